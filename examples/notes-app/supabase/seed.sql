insert into public.announcements (body) values ('Welcome to Notes!');
