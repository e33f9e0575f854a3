"""The Python that runs inside PostgreSQL under plpython3u.

The installer stores these modules in ``ai._python_module``; ``ai._load_python()``
imports them from there, so the code in a database is always the code of the schema
version installed in it. Modules, in the order a row travels:

- ``settings``: host and timeout resolution from arguments and GUCs; the superuser's allowed
  hosts and limits;
- ``http``: pooled, retrying HTTP connections per backend (urllib3); interruptible, bounded requests;
- ``ollama``, ``openai``: model providers;
- ``loading``, ``parsing``: a row's document (bytea, file or URL) as cited text parts;
- ``catalog``: a vectorizer's catalog row, read once; ``statements``: every statement the engine
  runs on its tables (the one place identifiers meet SQL);
- ``queue``: claim a batch, back off and park failed items;
- ``chunking``, ``formatting``: what a row becomes before it is embedded;
- ``embedding``: the one provider dispatch (chunks and search queries alike);
- ``store``: read and replace a key's chunks, reuse embeddings, the vector index;
- ``engine``: the batch (claim, load, chunk, format, embed, store) and its drivers;
- ``search``: the parts of a search statement (the statements are SQL, 50_search.sql);
- ``query_cache``: a search query's embedding, cached; ``rag``: RAG's prompt and answer;
- ``evaluation``: retrieval and RAG quality metrics, runs and comparisons;
- ``gateway``: SECURITY DEFINER functions that answer only pgweave's own code;
- ``secrets``: API keys, and redaction;
- ``vectors``: conversion between Python lists and pgvector's text form.
- ``errors``: PostgreSQL errors with SQLSTATE, hint and detail.
"""

CODE_PACKAGE = "pgweave_db"
