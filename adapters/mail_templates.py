"""Mail templates rendered with Jinja2: built-in ones, each replaceable by a file of the
same name in an operator's directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment

from domain.mail import MailTemplates, RenderedMail

BUILT_IN_DIR = Path(__file__).parent / "templates" / "mail"


class JinjaMailTemplates(MailTemplates):
    """Message ``NAME`` is three files: ``NAME.subject.txt`` (one line), ``NAME.txt``
    (the plain-text part) and ``NAME.html`` (the HTML part, which may extend
    ``base.html``).

    Each file is looked up in ``overrides_dir`` first, then among the built-in ones:
    an operator replaces one message, or only its layout, by writing that one file.
    HTML escapes every value; the subject and the text part take them as given.
    A variable missing from the context is an error (``jinja2.UndefinedError``), not
    a blank in a message already sent.

    Templates render in Jinja2's immutable sandbox: an operator's file is text to fill,
    never code, so it can use the values it is given and nothing else (no attribute of
    Python's internals, no call that changes a value: ``jinja2.sandbox.SecurityError``).
    """

    def __init__(
        self,
        overrides_dir: Path | None = None,
        *,
        defaults: Mapping[str, object] | None = None,
    ) -> None:
        loaders: list[BaseLoader] = []
        if overrides_dir is not None:
            # Checked now: a typo in the setting fails at start-up, not at the first mail.
            if not overrides_dir.is_dir():
                raise ValueError(f"the mail templates directory {overrides_dir} does not exist")
            loaders.append(FileSystemLoader(overrides_dir))
        loaders.append(FileSystemLoader(BUILT_IN_DIR))
        self._env = ImmutableSandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._defaults = dict(defaults or {})

    def render(self, template: str, context: Mapping[str, object]) -> RenderedMail:
        values = {**self._defaults, **context}
        try:
            subject = self._env.get_template(f"{template}.subject.txt")
            text = self._env.get_template(f"{template}.txt")
            html = self._env.get_template(f"{template}.html")
        except TemplateNotFound:
            raise LookupError(f"no mail template {template!r}") from None
        return RenderedMail(
            # One line whatever the values hold: a newline in a header would start a
            # header of its own (a Bcc, say).
            subject=" ".join(subject.render(values).split()),
            text=text.render(values),
            html=html.render(values),
        )
