-- Re-applied on every install: the procedures that run the engine (plpython/pgweave_db/engine.py).
-- Procedures, because they commit after every batch; so no SET clause (it would forbid that),
-- and every name in the engine is schema-qualified instead.

-- Drain a vectorizer's queue now, in committed batches (max_batches: stop after that many).
CREATE OR REPLACE PROCEDURE ai.execute_vectorizer(vectorizer_id int, max_batches int DEFAULT NULL)
LANGUAGE plpython3u
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
if not plpy.execute(plpy.prepare("SELECT 1 FROM ai.vectorizer WHERE id = $1", ["int"]), [vectorizer_id]):
    plpy.execute(plpy.prepare("SELECT ai._vectorizer($1)", ["int"]), [vectorizer_id])
GD["pgweave"].engine.execute(vectorizer_id, max_batches)
$python$;

CREATE OR REPLACE PROCEDURE ai.execute_vectorizer(name text, max_batches int DEFAULT NULL)
LANGUAGE plpython3u
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
vid = plpy.execute(plpy.prepare("SELECT ai._vectorizer_id($1) AS id", ["text"]), [name])[0]["id"]
GD["pgweave"].engine.execute(vid, max_batches)
$python$;

-- The background job pg_cron starts: resident for loop_seconds, polling the queue.
CREATE OR REPLACE PROCEDURE ai._vectorizer_job(vectorizer_id int)
LANGUAGE plpython3u
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
GD["pgweave"].engine.run_job(vectorizer_id)
$python$;
