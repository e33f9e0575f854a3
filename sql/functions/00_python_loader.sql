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
