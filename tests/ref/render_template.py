#!/usr/bin/env python3
"""render_template.py — the reference for phiq's chat-template renderer.

Renders Jinja chat templates with Python's jinja2 configured exactly as
Hugging Face transformers configures it in apply_chat_template
(transformers/utils/chat_template_utils.py, _compile_jinja_template and
render_jinja_template):

  * jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True,
    lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    (AssistantTracker only adds the {% generation %} block, which renders its
    body; it is reproduced below as a tiny extension);
  * the "tojson" filter replaced by json.dumps(x, ensure_ascii=False,
    indent=indent, separators=separators, sort_keys=sort_keys);
  * the globals raise_exception (raises jinja2.exceptions.TemplateError) and
    strftime_now (datetime.now().strftime(format));
  * render(messages=..., tools=..., documents=..., add_generation_prompt=...,
    **special_tokens) — tools and documents are None when not given.

Usage:
  render_template.py TEMPLATE VARS.json        prints the rendering (exit 1 + message on error)
  render_template.py --batch CASES.json        CASES: [{"template": str, "vars": {...}}, ...];
                                               prints [{"ok": true, "text": str} | {"ok": false, "error": str}]
Nothing here comes from phiq: it is the independent side of test_template_ref.
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(jinja2.ext.Extension):
    """transformers' AssistantTracker without the index tracking: {% generation %}...{% endgeneration %}."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(template, variables):
    variables = dict(variables)
    variables.setdefault("tools", None)
    variables.setdefault("documents", None)
    variables.setdefault("add_generation_prompt", False)
    return ENV.from_string(template).render(**variables)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        with open(sys.argv[2], encoding="utf-8") as f:
            cases = json.load(f)
        out = []
        for c in cases:
            try:
                out.append({"ok": True, "text": render(c["template"], c["vars"])})
            except Exception as e:  # every failure is a result to compare, not a crash
                out.append({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
        sys.stdout.write(json.dumps(out, ensure_ascii=False))
        return 0
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8", newline="") as f:
        template = f.read()
    with open(sys.argv[2], encoding="utf-8") as f:
        variables = json.load(f)
    try:
        text = render(template, variables)
    except Exception as e:
        sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
        return 1
    sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
