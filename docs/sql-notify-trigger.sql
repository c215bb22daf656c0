-- Makes PostgreSQL tell flagrelay about every change to GoFastr's flag table at once, for a
-- `kind: sql` retriever with `notifyChannel: flagrelay_flags` (see docs/sql-source.md).
-- Rename `feature_flags` if the app uses WithSQLTable, and the channel if you chose another.
CREATE OR REPLACE FUNCTION flagrelay_notify_flags() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('flagrelay_flags', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS feature_flags_notify ON feature_flags;
CREATE TRIGGER feature_flags_notify
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON feature_flags
  FOR EACH STATEMENT EXECUTE FUNCTION flagrelay_notify_flags();
