-- Avatars: a public bucket (anyone downloads) where each user writes under
-- a folder named by their id. Uploading with upsert needs the three
-- policies: insert, and select and update for the row it may replace.
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);
create policy "users upload their own avatar" on storage.objects for insert
  to authenticated with check (
    bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text
  );
create policy "users see their own avatar" on storage.objects for select
  to authenticated using (
    bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text
  );
create policy "users replace their own avatar" on storage.objects for update
  to authenticated using (
    bucket_id = 'avatars' and (storage.foldername(name))[1] = auth.uid()::text
  );
