"""Dashboard options → spec fields, and spec.viewers → JupyterHub roles, against JupyterHub's
own database layer and scope resolution (jupyterhub.orm on SQLite, jupyterhub.scopes): the access
a viewer gets is the one JupyterHub's OAuth checks. The end-to-end check through a real hub and
proxy is test/e2e/dashboards-hub.test.ts.
"""

from __future__ import annotations

import logging

import pytest

from nbswarm_spawner.access import access_scope, remove_viewer_access, role_name, sync_viewer_access
from nbswarm_spawner.dashboards import dashboard_spec, mode_option

log = logging.getLogger("test")


def test_cdsdashboards_options_become_spec_fields():
    spec = dashboard_spec(
        {
            "presentation_type": "voila",
            "presentation_path": "/notebooks/Intro.ipynb",
            "git_repo": "https://github.com/org/dash.git",
            "git_repo_branch": "main",
            "conda_env": "py39",
            "viewers": {"users": ["bob", "bob", "carol"], "groups": ["team"]},
        },
        {"app": {"args": ["--x"]}},
        git_secret="git-alice",
    )
    assert spec == {
        "app": {"args": ["--x"], "path": "notebooks/Intro.ipynb", "condaEnv": "py39"},
        "git": {"url": "https://github.com/org/dash.git", "branch": "main", "secretName": "git-alice"},
        "viewers": {"allUsers": False, "users": ["bob", "carol"], "groups": ["team"]},
    }
    assert mode_option({"presentation_type": "plotlydash"}) == "dash"
    assert mode_option({"mode": "shinyapp", "presentation_type": "voila"}) == "shinyapp"
    assert dashboard_spec({"viewers": {"all_users": True}}, {})["viewers"] == {"allUsers": True, "users": [], "groups": []}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"presentation_path": "a/../../etc"}, "must not contain '..'"),
        ({"conda_env": "-n evil"}, "is not a conda env name"),
        ({"template": "../x"}, "is not a template name"),
        ({"viewers": ["bob"]}, "viewers must be an object"),
        ({"viewers": {"users": "bob"}}, "viewers.users must be a list of names"),
        ({"viewers": {"everyone": True}}, "unknown key"),
        ({"git_secret": "nbs-bob-hub"}, "unknown option"),
        ({"mode": "Not A Mode"}, None),
    ],
)
def test_options_the_hub_refuses(options, message):
    with pytest.raises(ValueError) as e:
        if "mode" in options:
            mode_option(options)
        else:
            dashboard_spec(options, {})
    if message:
        assert message in str(e.value)


@pytest.fixture
def hubdb():
    from jupyterhub import orm, roles

    db = orm.new_session_factory("sqlite://")()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    for name in ("alice", "bob", "carol", "dave"):
        user = orm.User(name=name)
        db.add(user)
        db.commit()
        roles.assign_default_roles(db, user)
    yield db
    db.close()


def can_open(db, name, owner="alice", server="dash"):
    """Whether JupyterHub's own scope resolution gives `name` access to owner/server."""
    from jupyterhub import orm, scopes

    user = orm.User.find(db, name)
    granted = scopes.get_scopes_for(user)
    return any(s in granted for s in ("access:servers", f"access:servers!user={owner}", access_scope(owner, server)))


def test_viewers_get_exactly_the_access_scope_of_that_server(hubdb):
    from jupyterhub import orm

    out = sync_viewer_access(hubdb, "alice", "dash", {"viewers": {"users": ["bob", "zed"]}}, log)
    assert out["users"] == ["bob"] and out["unknown_users"] == ["zed"]
    role = orm.Role.find(hubdb, role_name("alice", "dash"))
    assert role.scopes == ["access:servers!server=alice/dash"]
    assert can_open(hubdb, "bob")
    assert not can_open(hubdb, "carol")
    assert not can_open(hubdb, "bob", server="other"), "only that one server"
    assert can_open(hubdb, "alice"), "the owner keeps access"

    # Changing the list revokes as well as grants; removing it drops the role.
    sync_viewer_access(hubdb, "alice", "dash", {"viewers": {"users": ["carol"]}}, log)
    assert can_open(hubdb, "carol") and not can_open(hubdb, "bob")
    sync_viewer_access(hubdb, "alice", "dash", {"viewers": {}}, log)
    assert orm.Role.find(hubdb, role_name("alice", "dash")) is None
    assert not can_open(hubdb, "carol")


def test_groups_and_all_users(hubdb):
    from jupyterhub import orm

    sync_viewer_access(hubdb, "alice", "dash", {"viewers": {"groups": ["analysts"]}}, log)
    group = orm.Group.find(hubdb, "analysts")
    assert group is not None and group.users == [], "a missing group is created empty"
    assert not can_open(hubdb, "dave")
    group.users.append(orm.User.find(hubdb, "dave"))
    hubdb.commit()
    assert can_open(hubdb, "dave"), "a member added later gets access without a new sync"

    sync_viewer_access(hubdb, "alice", "dash", {"viewers": {"allUsers": True}}, log)
    assert all(can_open(hubdb, n) for n in ("bob", "carol", "dave"))
    hubdb.add(orm.User(name="erin"))
    hubdb.commit()
    assert not can_open(hubdb, "erin")
    sync_viewer_access(hubdb, "alice", "dash", {"viewers": {"allUsers": True}}, log)
    assert can_open(hubdb, "erin"), "users who appear later are granted at the next sync (poll)"

    remove_viewer_access(hubdb, "alice", "dash", log)
    assert not can_open(hubdb, "bob")


def test_role_names_are_valid_jupyterhub_role_names():
    from jupyterhub.roles import _validate_role_name

    for owner, server in (("alice", ""), ("Bob.Smith@example.com", "My Dash"), ("a" * 63, "b" * 63)):
        assert _validate_role_name(role_name(owner, server))
    assert role_name("alice", "dash") != role_name("alice", "dash2")
