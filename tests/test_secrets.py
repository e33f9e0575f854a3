"""API keys: where a call finds its key, in which order, and who may use a stored one.

Every call goes to a loopback server that records the Authorization header it received, so
each test checks the key that was really sent, as a non-superuser role.
"""

from __future__ import annotations

import psycopg
import pytest

from pgweave_testing.fault_proxy import FaultProxy

EMBED = "SELECT vector_dims(ai.openai_embed('all-minilm', 'x', base_url => %s {}))"


def _sent_key(conn, recorder: FaultProxy, extra: str = "") -> str | None:
    """Make one embedding call; the bearer key the server received (None: no header)."""
    assert conn.execute(EMBED.format(extra), (recorder.url + "/v1",)).fetchone()[0] == 384
    header = recorder.posts("/v1/embeddings")[-1]["headers"].get("authorization")
    return header.removeprefix("Bearer ") if header else None


def test_the_key_comes_from_the_argument_then_the_setting_then_the_secret_store(db, app_role, recorder):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.store_secret('OPENAI_API_KEY', 'sk-from-the-store')")
        conn.execute("SELECT ai.grant_secret('OPENAI_API_KEY', 'app_user')")
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("SET ai.openai_api_key = 'sk-from-the-setting'")
        assert _sent_key(conn, recorder, ", api_key => 'sk-from-the-argument'") == "sk-from-the-argument"
        assert _sent_key(conn, recorder) == "sk-from-the-setting"
        conn.execute("RESET ai.openai_api_key")
        assert _sent_key(conn, recorder) == "sk-from-the-store"
        # Another name: its own setting and secret, never OPENAI_API_KEY's.
        conn.execute("SET ai.other_provider_key = 'sk-other-setting'")
        assert _sent_key(conn, recorder, ", api_key_name => 'OTHER_PROVIDER_KEY'") == "sk-other-setting"
        conn.execute("RESET ai.other_provider_key")
        assert _sent_key(conn, recorder, ", api_key_name => 'OTHER_PROVIDER_KEY'") is None


def test_revoke_secret_takes_a_stored_key_back(db, app_role, recorder):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.store_secret('OPENAI_API_KEY', 'sk-granted-then-revoked')")
        conn.execute("SELECT ai.grant_secret('OPENAI_API_KEY', 'app_user')")
    with psycopg.connect(app_role, autocommit=True) as conn:
        assert _sent_key(conn, recorder) == "sk-granted-then-revoked"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.revoke_secret('OPENAI_API_KEY', 'app_user')")
    with psycopg.connect(app_role, autocommit=True) as conn:
        assert _sent_key(conn, recorder) is None  # the row is hidden again: no key at all
        assert conn.execute("SELECT count(*) FROM ai._secret").fetchone()[0] == 0


def test_secret_permissions_lists_who_may_use_which_key_and_never_a_value(db, app_role):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.store_secret('OPENAI_API_KEY', 'sk-never-listed-0123')")
        conn.execute("SELECT ai.store_secret('OTHER_KEY', 'sk-never-listed-4567')")
        conn.execute("SELECT ai.grant_secret('OPENAI_API_KEY', 'app_user')")
    with psycopg.connect(app_role) as conn:
        cur = conn.execute("SELECT * FROM ai.secret_permissions ORDER BY name, role")
        assert [d.name for d in cur.description] == ["name", "role"]
        assert cur.fetchall() == [("OPENAI_API_KEY", "app_user")]
        assert conn.execute("SELECT name FROM ai._secret").fetchall() == [("OPENAI_API_KEY",)]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.grant_secret('*', 'app_user'), ai.revoke_secret('OPENAI_API_KEY', 'app_user')")
    with psycopg.connect(app_role) as conn:
        assert conn.execute("SELECT name, role FROM ai.secret_permissions").fetchall() == [("*", "app_user")]
        # The wildcard grant shows every key to app_user; a role cannot grant itself anything.
        assert sorted(conn.execute("SELECT name FROM ai._secret").fetchall()) == [("OPENAI_API_KEY",), ("OTHER_KEY",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ai.grant_secret('OPENAI_API_KEY', 'app_user')")
