-- The example's database, as a superuser: `psql -f examples/weikio-database/schema.sql`. The server also needs
-- `wal_level = logical` in postgresql.conf (then a restart) and the wal2json plugin (Debian:
-- `apt-get install postgresql-15-wal2json`).
CREATE ROLE shop LOGIN REPLICATION PASSWORD 's3cret-shop';
CREATE DATABASE shop OWNER shop;
\connect shop
SET ROLE shop;
CREATE TABLE orders (
    order_id integer PRIMARY KEY,
    customer text NOT NULL,
    status   text NOT NULL,
    amount   numeric(10,2) NOT NULL
);
-- old values of every column in UPDATE and DELETE events (`oldRow`); without it, `oldRow` is the primary key only
ALTER TABLE orders REPLICA IDENTITY FULL;
