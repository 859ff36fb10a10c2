{{ config(enabled=var('airquality_failing_variant', false) | as_bool, tags=['failing_variant']) }}
-- Errors by design (failing variant only): the database's message quotes this line back, with
-- its single and double quotes, a dollar sign and a backslash, so the hook must store them intact.
select 'it''s $1 "quoted" \ back' as label, no_such_column
from {{ ref('stg_airquality') }}
