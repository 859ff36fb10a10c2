-- The sample retail tables; run.sh then loads the CSV files into them.
set client_min_messages = warning;
drop table if exists orders;
drop table if exists customers;
create table orders (
    order_id integer, customer_id text, order_date date, status text,
    amount numeric(10, 2), email text, country text
);
create table customers (customer_id text, name text, segment text, signup_date date);
