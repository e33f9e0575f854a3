-- Re-applied on every install: loading documents (files, URLs, bytea) and parsing them into
-- text (plpython/pgweave_db/loading.py and parsing.py). create_vectorizer validates them with
-- ai._validate_parsing. Where files and URLs may come from, and the limits of one document,
-- are in ai._document_source and ai._document_limit (sql/catalog/0009_documents.sql), which
-- only a superuser writes.

-- Load a document named by a column: a path or file:// URI below a directory a superuser
-- allowed, or an http(s) URL below an allowed prefix. retries: attempts of a fetch that failed
-- for a transient reason (connection, 429, 5xx). Other schemes (s3://...) are refused: a new
-- entry in loading.py's _SCHEMES is where they would go; aws_role_arn is kept for pgai's SQL.
CREATE OR REPLACE FUNCTION ai.loading_uri(column_name name, retries int DEFAULT 6,
                                          aws_role_arn text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'uri', 'column_name', column_name,
        'retries', retries, 'aws_role_arn', aws_role_arn))
$$;

-- Parse by what the document is: its magic bytes, then its content type or file name. Text
-- from a text column is embedded as it is.
CREATE OR REPLACE FUNCTION ai.parsing_auto() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'auto') $$;

-- No parsing: the loaded value is the text (a fetched document must be UTF-8).
CREATE OR REPLACE FUNCTION ai.parsing_none() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'none') $$;

-- PDF (pypdf): one part per page, cited as (page N).
CREATE OR REPLACE FUNCTION ai.parsing_pdf() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'pdf') $$;

-- HTML (Beautiful Soup): the visible text, one part per h1-h3 section.
CREATE OR REPLACE FUNCTION ai.parsing_html() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'html') $$;

-- Markdown: the text as written, one part per heading's section.
CREATE OR REPLACE FUNCTION ai.parsing_markdown() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'markdown') $$;

-- Plain text (UTF-8).
CREATE OR REPLACE FUNCTION ai.parsing_text() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'text') $$;

-- Word .docx (python-docx): paragraphs and tables, one part per heading's section.
CREATE OR REPLACE FUNCTION ai.parsing_docx() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'docx') $$;

-- pgai's PyMuPDF parser: PyMuPDF is AGPL and not packaged for the server's Python, so this is
-- ai.parsing_auto(), which reads PDFs with pypdf (and HTML, Markdown, text, DOCX).
CREATE OR REPLACE FUNCTION ai.parsing_pymupdf() RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RAISE NOTICE 'ai.parsing_pymupdf() is ai.parsing_auto() here: PDFs are read with pypdf';
    RETURN ai.parsing_auto();
END
$$;

-- pgai's Docling parser: Docling (and its models) is not packaged for the server's Python, so
-- this is ai.parsing_auto() (PDF, HTML, Markdown, text, DOCX; no OCR, no PPTX or XLSX).
CREATE OR REPLACE FUNCTION ai.parsing_docling(cache_location text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RAISE NOTICE 'ai.parsing_docling() is ai.parsing_auto() here: PDF, HTML, Markdown, text and DOCX, without OCR';
    RETURN ai.parsing_auto();
END
$$;

-- Parsing fits the loading: a known parser; a bytea column needs one (its bytes are not
-- text); a URI column holds text. Returns the parsing config (ai.parsing_auto() by default).
CREATE OR REPLACE FUNCTION ai._validate_parsing(source regclass, loading jsonb, parsing jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    column_type regtype := (SELECT coalesce(nullif(t.typbasetype, 0), t.oid)::regtype
                            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                            WHERE a.attrelid = source AND a.attname = (loading->>'column_name')::name);
BEGIN
    parsing := coalesce(parsing, ai.parsing_auto());
    IF parsing->>'implementation' IS NULL
       OR parsing->>'implementation' NOT IN ('auto', 'none', 'pdf', 'html', 'markdown', 'text', 'docx') THEN
        RAISE EXCEPTION 'unknown parsing implementation %', coalesce(quote_literal(parsing->>'implementation'), 'NULL')
            USING ERRCODE = '22023',
            HINT = 'use ai.parsing_auto(), ai.parsing_none(), ai.parsing_pdf(), ai.parsing_html(), ai.parsing_markdown(), ai.parsing_text() or ai.parsing_docx()';
    END IF;
    IF loading->>'implementation' NOT IN ('column', 'uri') THEN
        RAISE EXCEPTION 'unknown loading implementation %', quote_literal(loading->>'implementation')
            USING ERRCODE = '22023', HINT = 'use ai.loading_column(...) or ai.loading_uri(...)';
    END IF;
    IF loading->>'implementation' = 'column' AND column_type = 'bytea'::regtype
       AND parsing->>'implementation' = 'none' THEN
        RAISE EXCEPTION 'column "%" of % is bytea, and ai.parsing_none() would embed its bytes as hex',
            loading->>'column_name', source USING ERRCODE = '22023',
            HINT = 'pass parsing => ai.parsing_auto() (PDF, HTML, Markdown, text, DOCX), or a named parser such as ai.parsing_pdf()';
    END IF;
    IF loading->>'implementation' = 'uri' AND column_type NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
        RAISE EXCEPTION 'ai.loading_uri needs a text column of paths or URLs; column "%" of % is %',
            loading->>'column_name', source, column_type USING ERRCODE = '42804',
            HINT = CASE WHEN column_type = 'bytea'::regtype
                        THEN format('the document itself is in the column: loading => ai.loading_column(%L)', loading->>'column_name')
                        ELSE 'store each document''s path or URL in a text column' END;
    END IF;
    RETURN parsing;
END
$$;
