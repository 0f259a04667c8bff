#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# check_man.py TOOLRUNTIME MANPAGE: every option each subcommand's --help
# lists appears in that subcommand's section of the man page, and every
# option a section lists is one --help lists (so neither can drift).
import re
import subprocess
import sys

tr, man = sys.argv[1], sys.argv[2]
# (--help argv, man section holding its options, whether the section must
# list nothing else: the synopsis also shows the subcommands' options)
commands = [
    (["--help"], "SYNOPSIS", False),
    (["exec", "--help"], "EXEC OPTIONS", True),
    (["doctor", "--help"], "DOCTOR OPTIONS", True),
    (["image", "--help"], "IMAGE BUILD OPTIONS", True),
    (["gc", "--help"], "GC OPTIONS", True),
]

text = open(man, encoding="utf-8").read().replace("\\-", "-").replace("\\(em", "-")
sections = {}
name = None
for line in text.splitlines():
    if line.startswith(".SH "):
        name = line[4:].strip().strip('"')
        sections[name] = []
    elif name:
        sections[name].append(line)
sections = {k: "\n".join(v) for k, v in sections.items()}

LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHORT_HELP = re.compile(r"^\s+(-[a-zA-Z]),", re.M)
SHORT_MAN = re.compile(r"^\.B[IR]? (-[a-zA-Z])\b", re.M)

failures = []
for argv, section, exact in commands:
    out = subprocess.run([tr] + argv, capture_output=True, text=True, check=True).stdout
    help_opts = set(LONG.findall(out)) | set(SHORT_HELP.findall(out))
    body = sections.get(section)
    if body is None:
        failures.append(f"man page has no section {section!r}")
        continue
    man_opts = set(LONG.findall(body)) | set(SHORT_MAN.findall(body))
    cmd = " ".join(argv)
    for o in sorted(help_opts - man_opts):
        failures.append(f"'{cmd}' lists {o}, the man page's {section} does not")
    for o in sorted(man_opts - help_opts if exact else []):
        failures.append(f"the man page's {section} lists {o}, '{cmd}' does not")

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
