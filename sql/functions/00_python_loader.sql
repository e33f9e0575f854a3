-- Re-applied on every install. @CODE_HASH@ is replaced by the hash of plpython/ at install.

-- Import the in-database Python package from ai._python_module into this backend.
-- Every PL/Python function starts with the same two lines:
--     if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
--     pw = GD["pgweave"]
-- so a backend that outlives an upgrade reloads the code, and a function never runs
-- with code of another version than its own.
CREATE OR REPLACE FUNCTION ai._load_python() RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
import importlib
import importlib.abc
import importlib.util
import sys

code_hash = plpy.execute("SELECT code_hash FROM ai.pgweave_install")[0]["code_hash"]
sources = {r["name"]: (r["is_package"], r["source"])
           for r in plpy.execute("SELECT name, is_package, source FROM ai._python_module")}


class DatabaseModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serve the modules stored in ai._python_module to Python's import system."""
    pgweave = True

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in sources:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=sources[fullname][0])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        is_package, source = sources[module.__name__]
        filename = module.__name__.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        exec(compile(source, filename, "exec"), module.__dict__)


sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "pgweave", False)]
for name in [m for m in sys.modules if m == "pgweave_db" or m.startswith("pgweave_db.")]:
    del sys.modules[name]
sys.meta_path.insert(0, DatabaseModules())
package = importlib.import_module("pgweave_db")
for name in sorted(sources):
    importlib.import_module(name)
GD["pgweave"] = package
GD["pgweave_hash"] = code_hash
return code_hash
$python$;

-- The installed pgweave version and code hash.
CREATE OR REPLACE FUNCTION ai.pgweave_version() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT version FROM ai.pgweave_install $$;

-- ===== clean errors from Python ============================================================
--
-- PL/Python puts the Python class before the message of every error that leaves a function
-- ("plpy.Error: model 'x' is not available", "spiexceptions.UndefinedColumn: ..."), whatever
-- the Python code does. So no function users call is written in Python: each is an internal
-- ai._<name>_py in PL/Python, and ai._python_entry_point makes the function users call, in
-- PL/pgSQL, with the same arguments, defaults, result, volatility and parallel safety, which
-- re-raises the Python function's errors without the prefix (SQLSTATE, detail, hint kept).

-- Re-raise an error caught from a PL/Python function without PL/Python's class prefix, with
-- its SQLSTATE, detail and hint; returns (and the caller re-raises it as it is, `RAISE;`) when
-- the message has no such prefix, e.g. a bug's KeyError, whose traceback is then kept.
CREATE OR REPLACE FUNCTION ai._raise_python_error(err_message text, err_state text, err_detail text,
                                                  err_hint text, err_schema text DEFAULT NULL,
                                                  err_table text DEFAULT NULL, err_column text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Nested calls stack prefixes: "spiexceptions.ExternalRoutineException: plpy.Error: ...".
    prefix text := substring(err_message FROM '^(?:(?:plpy|spiexceptions)\.[A-Za-z_]+: )+');
    clean text;
    d text := nullif(err_detail, '');
    h text := nullif(err_hint, '');
    -- The object the error is about (clients tell errors apart by these); empty when none.
    sch text := coalesce(err_schema, '');
    tab text := coalesce(err_table, '');
    col text := coalesce(err_column, '');
BEGIN
    IF prefix IS NULL THEN
        RETURN;
    END IF;
    clean := substr(err_message, length(prefix) + 1);
    IF d IS NULL AND h IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = clean, ERRCODE = err_state, SCHEMA = sch, TABLE = tab, COLUMN = col;
    ELSIF d IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = clean, ERRCODE = err_state, HINT = h, SCHEMA = sch, TABLE = tab, COLUMN = col;
    ELSIF h IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = clean, ERRCODE = err_state, DETAIL = d, SCHEMA = sch, TABLE = tab, COLUMN = col;
    ELSE
        RAISE EXCEPTION USING MESSAGE = clean, ERRCODE = err_state, DETAIL = d, HINT = h,
                              SCHEMA = sch, TABLE = tab, COLUMN = col;
    END IF;
END
$$;

-- Create (or replace) ai.<entry_name>: python_function's arguments, result and properties,
-- calling it, its errors (a cancel's too) re-raised by ai._raise_python_error.
CREATE OR REPLACE FUNCTION ai._python_entry_point(python_function regprocedure, entry_name name)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $gen$
DECLARE
    f pg_proc;
    call text;
    outs text;
    body text;
    -- A literal api_key must not reach the server log on a failed statement's STATEMENT line:
    -- such functions quiet that line first, outside the block whose error they re-raise (the
    -- block's rollback would undo it), and restore it once the call succeeded.
    keyed boolean;
BEGIN
    SELECT * INTO STRICT f FROM pg_proc WHERE oid = python_function;
    keyed := 'api_key' = ANY (f.proargnames);
    -- The call passes the input arguments; OUT arguments (not a RETURNS TABLE's columns) are
    -- what a record result is selected into.
    SELECT format('%s(%s)', python_function::oid::regproc, coalesce(
               string_agg(quote_ident(a.name), ', ' ORDER BY a.n) FILTER (WHERE a.mode IN ('i', 'b', 'v')), '')),
           string_agg(quote_ident(a.name), ', ' ORDER BY a.n) FILTER (WHERE a.mode IN ('o', 'b'))
    INTO call, outs
    FROM unnest(f.proargnames, coalesce(f.proargmodes, array_fill('i'::"char", ARRAY[f.pronargs])))
         WITH ORDINALITY AS a(name, mode, n);
    body := CASE
        WHEN f.proretset THEN format('RETURN QUERY SELECT * FROM %s;', call)
        WHEN outs IS NOT NULL THEN format('SELECT * INTO %s FROM %s;', outs, call)
        WHEN f.prorettype = 'void'::regtype THEN format('PERFORM %s;', call)
        WHEN keyed THEN format('pw_result := %s;', call)
        ELSE format('RETURN %s;', call) END;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION ai.%I(%s) RETURNS %s
        LANGUAGE plpgsql %s %s SET search_path = pg_catalog, pg_temp
        AS $body$
        DECLARE
            err_message text; err_state text; err_detail text; err_hint text; err_schema text; err_table text; err_column text; %s
        BEGIN
            %s
            BEGIN
                %s
            EXCEPTION WHEN OTHERS OR query_canceled THEN  -- OTHERS leaves out a cancel
                GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                        err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT,
                                    err_schema = SCHEMA_NAME, err_table = TABLE_NAME, err_column = COLUMN_NAME;
                PERFORM ai._raise_python_error(err_message, err_state, err_detail, err_hint, err_schema, err_table, err_column);
                RAISE;
            END;
            %s
        END
        $body$$f$,
        entry_name, pg_get_function_arguments(f.oid), pg_get_function_result(f.oid),
        CASE f.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
        CASE f.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED'
                           ELSE 'PARALLEL UNSAFE' END,
        CASE WHEN body LIKE 'pw_result%' THEN format('pw_result %s;', pg_get_function_result(f.oid)) ELSE '' END,
        CASE WHEN keyed THEN 'IF api_key IS NOT NULL THEN PERFORM ai._quiet_failed_statement(true); END IF;'
             ELSE '' END,
        body,
        CASE WHEN keyed THEN 'IF api_key IS NOT NULL THEN PERFORM ai._quiet_failed_statement(false); END IF;'
             ELSE '' END
        || CASE WHEN body LIKE 'pw_result%' THEN ' RETURN pw_result;' ELSE '' END);
END
$gen$;
