"""The mail templates: the built-in messages, escaping, overrides by file name."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from adapters.mail_templates import BUILT_IN_DIR, JinjaMailTemplates

LINK = "https://app.example.com/verify?token=abc123&next=%2Fhome"
DEFAULTS = {"project_name": "Acme"}
CONTEXTS: dict[str, dict[str, object]] = {
    "verify_email": {"username": "alice", "link": LINK, "expires_hours": 24},
    "password_reset": {"username": "alice", "link": LINK, "expires_minutes": 30},
    "email_changed": {"username": "alice", "new_email": "a***@example.com"},
    "password_changed": {"username": "alice"},
    "test_message": {},
}
WITH_LINK = ["verify_email", "password_reset"]


@pytest.fixture
def templates() -> JinjaMailTemplates:
    return JinjaMailTemplates(defaults=DEFAULTS)


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_built_in_message_renders_a_subject_and_both_parts(
    templates: JinjaMailTemplates, name: str
) -> None:
    mail = templates.render(name, CONTEXTS[name])

    assert "Acme" in mail.subject
    assert "\n" not in mail.subject
    assert mail.subject == mail.subject.strip()
    assert "Acme" in mail.text
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")
    assert "Acme" in mail.html
    if "username" in CONTEXTS[name]:
        assert "alice" in mail.text
        assert "alice" in mail.html


def test_the_built_in_directory_is_data_not_a_package() -> None:
    assert not (BUILT_IN_DIR / "__init__.py").exists()
    assert {path.name for path in BUILT_IN_DIR.iterdir()} >= {
        f"{name}{suffix}" for name in CONTEXTS for suffix in (".subject.txt", ".txt", ".html")
    }


@pytest.mark.parametrize("name", WITH_LINK)
def test_the_link_is_in_both_parts_as_given_and_escaped_only_in_html(
    templates: JinjaMailTemplates, name: str
) -> None:
    mail = templates.render(name, CONTEXTS[name])

    assert LINK in mail.text
    escaped = LINK.replace("&", "&amp;")
    assert f'href="{escaped}"' in mail.html
    assert f">{escaped}</a>" in mail.html  # shown as text too, for a copy and paste
    assert LINK not in mail.html


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_the_html_refers_to_no_url_but_the_link(templates: JinjaMailTemplates, name: str) -> None:
    html = templates.render(name, CONTEXTS[name]).html

    urls = re.findall(r"""(?:https?:)?//[^\s"'<>]+""", html)
    assert set(urls) <= {LINK.replace("&", "&amp;")}
    assert "src=" not in html
    assert "<link" not in html
    assert "url(" not in html


def test_the_expiry_is_stated_in_the_message(templates: JinjaMailTemplates) -> None:
    verify = templates.render("verify_email", CONTEXTS["verify_email"])
    reset = templates.render("password_reset", CONTEXTS["password_reset"])
    one_hour = templates.render("verify_email", {**CONTEXTS["verify_email"], "expires_hours": 1})

    assert "expires in 24 hours" in verify.text
    assert "expires in 24 hours" in verify.html
    assert "expires in 30 minutes" in reset.text
    assert "expires in 30 minutes" in reset.html
    assert "expires in 1 hour." in one_hour.text


def test_the_email_change_notice_names_the_masked_new_address(
    templates: JinjaMailTemplates,
) -> None:
    mail = templates.render("email_changed", CONTEXTS["email_changed"])

    assert "a***@example.com" in mail.text
    assert "a***@example.com" in mail.html


def test_html_escapes_every_value_and_the_text_part_keeps_it_as_given(
    templates: JinjaMailTemplates,
) -> None:
    script = "<script>alert(1)</script>"

    mail = templates.render("password_changed", {"username": script})

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert script not in mail.html
    assert script in mail.text


def test_the_subject_is_one_line_whatever_a_value_holds() -> None:
    templates = JinjaMailTemplates(defaults={"project_name": "Acme\r\nBcc: eve@example.com\n"})

    mail = templates.render("test_message", {})

    assert mail.subject == "Test message from Acme Bcc: eve@example.com"


def test_the_context_wins_over_the_defaults(templates: JinjaMailTemplates) -> None:
    mail = templates.render("test_message", {"project_name": "Other"})

    assert mail.subject == "Test message from Other"


def test_an_override_replaces_a_built_in_file_by_name_and_the_others_stay(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_message.subject.txt").write_text("Hello from {{ project_name }}\n")
    (tmp_path / "test_message.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>Custom body</p>{% endblock %}'
    )
    templates = JinjaMailTemplates(tmp_path, defaults=DEFAULTS)

    test_message = templates.render("test_message", {})
    verify = templates.render("verify_email", CONTEXTS["verify_email"])

    assert test_message.subject == "Hello from Acme"
    assert "<p>Custom body</p>" in test_message.html  # in the built-in layout
    assert test_message.html.lstrip().startswith("<!DOCTYPE html>")
    assert test_message.text == "This is a test message from Acme: mail delivery works.\n"
    assert verify.subject == "Confirm your email address for Acme"


def test_an_override_of_the_layout_applies_to_every_message(tmp_path: Path) -> None:
    (tmp_path / "base.html").write_text("<main>{% block content %}{% endblock %}</main>")
    templates = JinjaMailTemplates(tmp_path, defaults=DEFAULTS)

    html = templates.render("password_changed", CONTEXTS["password_changed"]).html

    assert html.startswith("<main>")


def test_an_unknown_template_is_a_lookup_error(templates: JinjaMailTemplates) -> None:
    with pytest.raises(LookupError, match="no mail template 'welcome'"):
        templates.render("welcome", {})


def test_a_template_name_cannot_reach_outside_the_directories(
    templates: JinjaMailTemplates,
) -> None:
    with pytest.raises(LookupError):
        templates.render("../mail/test_message", {})


def test_a_missing_variable_is_an_error_not_a_blank(templates: JinjaMailTemplates) -> None:
    with pytest.raises(jinja2.UndefinedError, match="link"):
        templates.render("verify_email", {"username": "alice", "expires_hours": 24})


def test_an_overrides_directory_that_does_not_exist_fails_at_construction(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        JinjaMailTemplates(tmp_path / "typo")


# Server-side template injection, as it is done against an unsandboxed Jinja2.
ESCAPES = [
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{% set x = [] %}{{ x.append(1) }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_an_operators_template_cannot_reach_python(tmp_path: Path, body: str) -> None:
    marker = tmp_path / "escaped"
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "test_message.txt").write_text(body.replace("MARKER", str(marker)))
    templates = JinjaMailTemplates(overrides_dir=overrides, defaults=DEFAULTS)

    with pytest.raises(jinja2.TemplateError):
        templates.render("test_message", {})
    assert not marker.exists()
