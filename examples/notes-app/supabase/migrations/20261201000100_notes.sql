-- Notes are private to their owner.
create table public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null check (length(body) between 1 and 1000),
  created_at timestamptz not null default now()
);
alter table public.notes enable row level security;
create policy "owners read their notes" on public.notes for select
  to authenticated using (owner = auth.uid());
create policy "owners write their notes" on public.notes for insert
  to authenticated with check (owner = auth.uid());
create policy "owners delete their notes" on public.notes for delete
  to authenticated using (owner = auth.uid());

-- Announcements are readable by anyone, written by no one but the service.
create table public.announcements (
  id bigint generated always as identity primary key,
  body text not null
);
alter table public.announcements enable row level security;
create policy "anyone reads announcements" on public.announcements for select using (true);
