"""Templates render in Jinja2's sandbox: no Python internals, no files, no network."""

from __future__ import annotations

import socket
import threading

import pytest
from journeyman.engine.delivery.templates import TemplateError, Templates

SECRET_FILE_TEXT = "root-only-secret-contents"

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ member.__class__.__base__.__subclasses__() }}",
    "{{ track.__globals__ }}",
    "{{ track.__code__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ config }}{{ request }}{{ settings.secret_key }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% import '/etc/hostname' as h %}{{ h }}",
    "{% extends 'file:///etc/passwd' %}",
    "{% include SECRET_PATH %}",
    "{{ range(10**9) | list | length }}",
    "{{ 'x' * 10**9 }}",
    "{{ [1, 2] * 10**9 }}",
    "{{ 2 ** 100000000 }}",
]

LEAKS = ("<class", "<function", "<module", "__builtins__", "root:", SECRET_FILE_TEXT, "uid=")


def _templates(tmp_path, source: str) -> Templates:  # type: ignore[no-untyped-def]
    name = "attack"
    (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / name / "sms.text.j2").write_text(source)
    return Templates(tmp_path)


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_attempts_fail_and_leak_nothing(tmp_path, source: str) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_FILE_TEXT)
    templates = _templates(tmp_path, source.replace("SECRET_PATH", repr(str(secret))))
    context = {"member": {"id": "m1", "traits": {}}, "SECRET_PATH": str(secret)}
    try:
        out = templates.render("attack", "sms", context, track=lambda u: u).text
    except TemplateError:
        return  # refused: the expected outcome for nearly every attempt
    # Rendered anyway (undefined attributes render empty): nothing may have leaked.
    for leak in LEAKS:
        assert leak not in out, (source, out[:200])
    assert len(out) < 100_000


def test_templates_cannot_reach_the_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    hits: list[object] = []

    def accept() -> None:
        try:
            hits.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    url = f"http://127.0.0.1:{port}/x"
    for source in (
        f"{{% include '{url}' %}}",
        f"{{{{ cycler.__init__.__globals__.os.popen('curl {url}').read() }}}}",
        "{{ ''.__class__.__mro__[1].__subclasses__() | select('equalto', 'socket') | list }}",
    ):
        try:
            _templates(tmp_path, source).render("attack", "sms", {}, track=lambda u: u)
        except TemplateError:
            pass
    t.join()
    server.close()
    assert hits == []


def test_a_plain_template_still_renders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = _templates(tmp_path, "Hi {{ member.traits.first_name | default('there') }}!").render(
        "attack", "sms", {"member": {"traits": {"first_name": "Ada"}}}, track=lambda u: u
    )
    assert out.text == "Hi Ada!"
