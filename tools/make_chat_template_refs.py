#!/usr/bin/env python3
"""Writes tests/fixtures/chat_templates/*.json: prompts rendered by transformers.

Why: a chat template decides every byte of the prompt, and transformers' apply_chat_template is
what models are used with, so its renders are the reference for our interpreter
(src/tokenizer/chat_template*.cpp). CI never runs this script; rerun it as tools/README.md says.

For each model folder in ../shared/models with a chat_template (smollm2-135m, tinyllama,
llama2-7b-chat, llama3.2-1b) and for StableLM-2 (no tokenizer_config.json in the shared folder:
we use the ChatML template models/README.md describes, written out below), five conversations
are rendered with transformers' render_jinja_template (the function apply_chat_template calls)
and cross-checked against apply_chat_template itself. strftime_now is pinned to FIXED_DATE.
The templates are read from ../shared at test time and are not copied here (only ChatML, which
is ours, is stored in the fixture).

features.json: small templates of our own, one per Jinja construct the interpreter supports,
rendered by transformers' Jinja environment (trim_blocks, lstrip_blocks, its tojson and globals).
"""
import argparse
import datetime
import json
import os
from unittest import mock

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils import chat_template_utils as ctu

FIXED_DATE = datetime.datetime(2024, 9, 5, 12, 0, 0)  # the C++ test sets the same moment

# ChatML as the StableLM-2 chat model card describes it (models/README.md); our own text.
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

MODELS = ["smollm2-135m", "tinyllama", "llama2-7b-chat", "llama3.2-1b", "stablelm"]

CONVERSATIONS = [
    {"name": "user_only_with_prompt", "add_generation_prompt": True,
     "messages": [{"role": "user", "content": "Hello! How are you?"}]},
    {"name": "system_user_with_prompt", "add_generation_prompt": True,
     "messages": [{"role": "system", "content": "You are a concise assistant."},
                  {"role": "user", "content": "What is 2+2?"}]},
    {"name": "multi_turn_with_prompt", "add_generation_prompt": True,
     "messages": [{"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."},
                  {"role": "user", "content": "Another one?"}]},
    {"name": "system_multi_turn_no_prompt", "add_generation_prompt": False,
     "messages": [{"role": "system", "content": "Answer in French."},
                  {"role": "user", "content": "Good morning"},
                  {"role": "assistant", "content": "Bonjour"},
                  {"role": "user", "content": "Thank you"},
                  {"role": "assistant", "content": "Merci"}]},
    {"name": "whitespace_and_unicode_no_prompt", "add_generation_prompt": False,
     "messages": [{"role": "system", "content": "  Be brief.  \n"},
                  {"role": "user", "content": " Tabs\tand\nnewlines; caf\u00e9 \u4e2d\u6587 \U0001F642 "},
                  {"role": "assistant", "content": "  Sure!  "}]},
]

# Llama 3.2 only: the tool-calling branches (tojson with indent, tool_calls, tool role).
LLAMA3_TOOLS = {
    "name": "tools_and_tool_calls", "add_generation_prompt": True,
    "extra_variables": {"tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]},
    "messages": [{"role": "user", "content": "Weather in Paris?"},
                 {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                  "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                 {"role": "tool", "content": "{\"temp\": 21}"}],
}

# (name, template, variables): one construct each; expected output comes from Jinja itself.
FEATURES = [
    ("text_only", "plain text\n", {}),
    ("trailing_newline_dropped", "a\n\n", {}),
    ("crlf_source", "a\r\nb{% if true %}\r\nc{% endif %}", {}),
    ("output_types", "{{ 1 }}|{{ 1.5 }}|{{ 2.0 }}|{{ true }}|{{ none }}|{{ 'x' }}|{{ [1, 'a'] }}|{{ {'k': 'v'} }}|{{ undefined_name }}|", {}),
    ("whitespace_control", "a  {{- ' b ' -}}  c\n  {%- if true -%}\n  d  \n{%- endif %}  e", {}),
    ("trim_and_lstrip_blocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz\n  {# comment #}\nw", {}),
    ("lstrip_plus_disables", "x\n    {%+ if true %}y{% endif %}", {}),
    ("comment_dash", "a  {#- c -#}  b", {}),
    ("for_loop_vars", "{% for x in items %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ x }};{% endfor %}", {"items": ["a", "b", "c"]}),
    ("for_else_empty", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_if_filter", "{% for x in items if x > 1 %}{{ x }}{{ loop.index }}{{ loop.length }},{% endfor %}", {"items": [1, 2, 3, 0, 5]}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_over_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'h\u00e9' %}[{{ c }}]{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_cycle_previtem", "{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{% if not loop.first %}{{ loop.previtem }}{% endif %}{% endfor %}", {}),
    ("nested_loops", "{% for a in [1,2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}/{{ loop.index }} {% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in [1,2,3] %}{% if m == 2 %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + m %}{% endfor %}{{ ns.found }} {{ ns.n }}", {}),
    ("set_block", "{% set s %}a{{ 1 + 1 }}b{% endset %}[{{ s }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("if_elif_else", "{% for x in [1,2,3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %} {% endfor %}", {}),
    ("conditional_expression", "{{ 'yes' if flag else 'no' }} {{ 'a' if not flag }}|{{ 1 if none_value is none else 2 }}", {"flag": True, "none_value": None}),
    ("arithmetic", "{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 10 / 5 }}", {}),
    ("string_ops", "{{ 'a' + 'b' }} {{ 'x' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'b' in 'abc' }} {{ 'z' not in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }}", {}),
    ("comparisons_logic", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ true and false }} {{ true or false }} {{ not true }} {{ 0 or 'x' }} {{ '' and 'y' }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ~ 3 + '4' }} {{ not 1 == 2 }} {{ -2 ** 2 }} {{ ' x '|trim + 'y' }}", {}),
    ("indexing_slicing", "{{ items[0] }} {{ items[-1] }} {{ items[1:] }} {{ items[:2] }} {{ items[::-1] }} {{ items[::2] }} {{ 'h\u00e9llo'[1:3] }} {{ 'abc'[::-1] }} {{ d['k'] }} {{ d.k }} {{ items.0 }}", {"items": [1, 2, 3, 4], "d": {"k": "v"}}),
    ("literals", "{{ [1, 'two', [3]] }} {{ {'a': 1, 'b': [true, none]} }} {{ (1, 2) }} {{ 'con' 'cat' }} {{ \"dq\\n\\t'\" }} {{ 'esc\\\\' }} {{ 1_000 }} {{ 1e3 }}", {}),
    ("string_methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'abc'.startswith('a') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'ab'.upper() }}|{{ 'AB'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ '{} and {}'.format(1, 'x') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}", {}),
    ("unicode_case_and_strip", "{{ 'stra\u00dfe'.upper() }}|{{ '\u00c9COLE'|lower }}|{{ '\u00a0\u3000x\u2003'.strip() }}|{{ '\u00e9t\u00e9 \u00e0 paris'|title }}", {}),
    ("filters_basic", "{{ ' x '|trim }}|{{ 'xyx'|trim('x') }}|{{ [1,2,3]|length }}|{{ 'h\u00e9'|length }}|{{ {'a':1}|length }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'ab cd'|title }}|{{ 'ab'|capitalize }}|{{ [1,2]|first }}|{{ [1,2]|last }}|{{ 'abc'|first }}|{{ [1,2]|join(', ') }}|{{ 'aXa'|replace('a', 'b') }}|{{ 42|string }}|{{ '12'|int + 1 }}|{{ 'x'|int }}|{{ '1.5'|float }}|{{ -3|abs }}|{{ [1,2]|reverse|list }}|{{ 'abc'|reverse }}|{{ [3,4]|count }}", {}),
    ("default_filter", "{{ missing|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ missing|d('x') }}", {}),
    ("tojson", "{{ obj|tojson }}|{{ obj|tojson(indent=2) }}|{{ 'caf\u00e9 \"q\" \\n <b>'|tojson }}|{{ [1.5, none, true]|tojson }}|{{ obj|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ []|tojson }}|{{ {}|tojson(indent=4) }}", {"obj": {"name": "f", "args": {"x": [1, 2], "y": {}}}}),
    ("select_reject_map", "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}|{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}|{{ [0,1,2,3]|select('odd')|list }}|{{ [0,1,2]|reject|list }}|{{ msgs|selectattr('extra')|list|length }}|{{ ['a','b']|map('upper')|join }}", {"msgs": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1", "extra": 1}, {"role": "user", "content": "u2"}]}),
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }} {{ 3 is number }} {{ 3 is integer }} {{ 3.0 is float }} {{ true is boolean }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 1 is eq 1 }} {{ x is not none }} {{ x is in [1, 2] }} {{ true is true }} {{ 1 is true }} {{ x is gt 0 }} {{ range is callable }}", {"x": 1}),
    ("dict_methods", "{% for k in d.keys() %}{{ k }}{% endfor %}|{% for v in d.values() %}{{ v }}{% endfor %}|{{ d.get('a') }}|{{ d.get('zz') }}|{{ d.get('zz', 'fallback') }}|{{ dict(a=1, b='x') }}", {"d": {"a": 1, "b": 2}}),
    ("indent_filter", "[{{ 'a\\nb\\n\\nc'|indent(2) }}]|[{{ 'a\\nb'|indent(4, true) }}]|[{{ 'a\\n\\nb\\n'|indent(2, blank=true) }}]", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}", {}),
    ("generation_block", "a{% generation %}b{{ 1 }}{% endgeneration %}c", {}),
    ("escape_safe", "{{ '<a>&'|e }} {{ '<b>'|safe }}", {}),
    ("range_global", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}", {}),
    ("messages_style", "{%- for m in messages %}{{- '<' + m.role + '>' + (m.content | trim) + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<assistant>' }}{% endif %}", {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}], "add_generation_prompt": True}),
    ("nested_data_access", "{{ m.tool_calls[0].function.name }} {{ m['tool_calls'][0]['function']['arguments']|tojson }} {{ m.tool_calls|length }} {{ 'tool_calls' in m }}", {"m": {"tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}),
]


def render(template, **variables):
    with mock.patch.object(ctu, "datetime", FixedDatetime):
        return ctu._compile_jinja_template(template).render(**variables)


class FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_DATE


def token_text(value):
    return value["content"] if isinstance(value, dict) else (value or "")


def model_fixture(shared, model):
    folder = os.path.join(shared, "models", model)
    config_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        template = config["chat_template"]
        bos, eos = token_text(config.get("bos_token")), token_text(config.get("eos_token"))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        fixture = {"template_file": f"models/{model}/tokenizer_config.json"}
    else:  # stablelm: ChatML (models/README.md); bos/eos as arcade100k names them
        template, bos, eos, tokenizer = CHATML, "<|endoftext|>", "<|endoftext|>", None
        fixture = {"template": CHATML,
                   "template_note": "no tokenizer_config.json in ../shared/models/stablelm: ChatML "
                                    "as the StableLM-2 chat model card describes it"}
    fixture.update({"model": model, "bos_token": bos, "eos_token": eos,
                    "date": FIXED_DATE.strftime("%Y-%m-%d"), "cases": []})
    conversations = CONVERSATIONS + ([LLAMA3_TOOLS] if model == "llama3.2-1b" else [])
    for conv in conversations:
        extra = conv.get("extra_variables", {})
        expected = render(template, messages=conv["messages"], tools=extra.get("tools"),
                          documents=None, add_generation_prompt=conv["add_generation_prompt"],
                          bos_token=bos, eos_token=eos)
        if tokenizer is not None:  # the same through the public API users call
            with mock.patch.object(ctu, "datetime", FixedDatetime):
                public = tokenizer.apply_chat_template(
                    conv["messages"], tools=extra.get("tools"), tokenize=False,
                    add_generation_prompt=conv["add_generation_prompt"])
            assert public == expected, f"{model}/{conv['name']}: apply_chat_template differs"
        case = {k: conv[k] for k in ("name", "add_generation_prompt", "messages")}
        if extra:
            case["extra_variables"] = extra
        case["expected"] = expected
        fixture["cases"].append(case)
    return fixture


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "chat_templates"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    versions = f"transformers=={transformers.__version__} jinja2=={jinja2.__version__}"
    for model in MODELS:
        fixture = model_fixture(args.shared, model)
        fixture["reference"] = versions
        with open(os.path.join(args.out, f"{model}.json"), "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"wrote {model}.json ({len(fixture['cases'])} conversations)")
    features = {"reference": versions, "date": FIXED_DATE.strftime("%Y-%m-%d"), "cases": []}
    for name, template, variables in FEATURES:
        features["cases"].append({"name": name, "template": template, "variables": variables,
                                  "expected": render(template, **variables)})
    with open(os.path.join(args.out, "features.json"), "w", encoding="utf-8") as f:
        json.dump(features, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote features.json ({len(FEATURES)} templates)")


if __name__ == "__main__":
    main()
