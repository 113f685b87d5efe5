#!/usr/bin/env python3
"""Regenerates crates/sortie-cli/tests/data/parallel_conformance.json.

Each case is a GNU parallel command line written for sortie's conformance suite from GNU
parallel's manual, tutorial and examples (man parallel, parallel_tutorial, parallel_examples;
the cases are our own). This script runs each with the installed `parallel` (Debian's, version
printed in the file) in a scratch directory holding the case's files, and records stdout, stderr
and the exit status. The test (crates/sortie-cli/tests/parallel_conformance.rs) needs neither
parallel nor the network: it runs `sortie run -H local --plain ARGS` and compares.

expect = "same": sortie must print the same stdout (sorted lines when the case has no -k and
more than one job) and stderr and exit with the same status.
expect = "refused": sortie must exit 2 with nothing on stdout and an error naming `where` (the
template column or the option) with a hint (`help:`).

Usage: python3 scripts/parallel_conformance.py   (needs GNU parallel: apt-get install parallel)
"""
import json
import os
import subprocess
import tempfile

FILES = {
    "abc": "A\nB\nC\n",
    "num": "1\n2\n",
    "xyz": "x\ny\nz\n",
    "crlf": "a\r\nb\r\n",
    "cmds": "echo one\necho two\n",
    "paths": "/usr/lib/x.tar.gz\nrel/dir/file.txt\nplain\n",
    "tsv": "a\t1\nb\t2\n",
    "hdr": "name\tn\nx\t1\n",
    "nul": "x\0y z\0",
    "commas": "p,q,r\n",
    "stopfile": "a\nb\nstop\nc\n",
}

SAME, REFUSED = "same", "refused"

# Cases where parallel prints a diagnostic of its own on stderr (not the jobs' output): sortie
# must match stdout and exit status, and is free to word its diagnostics differently.
OWN_DIAGNOSTICS = {"halt-soon"}

# Known differences, with the reason: the tests check they still differ (so the list stays
# true) and report them; they are not counted as identical.
SHELL_DIFFERS = {
    "bash-braces-kept": "sortie runs each job with /bin/sh -c on every host (README, 'Which shell reads what'), GNU parallel with $SHELL (bash here): bash's brace expansion is not done",
}

# (name, argv after `parallel`, stdin or None, expect, where-for-refusals)
CASES = [
    # Basics from the tutorial's "Input sources".
    ("echo-list", ["-k", "echo", ":::", "A", "B", "C"], None, SAME, None),
    ("echo-braces", ["-k", "echo", "{}", ":::", "A", "B", "C"], None, SAME, None),
    ("unordered-list", ["echo", ":::", "A", "B", "C"], None, SAME, None),
    ("two-sources", ["-k", "echo", ":::", "A", "B", "C", ":::", "D", "E", "F"], None, SAME, None),
    ("three-sources", ["-k", "echo", ":::", "a", "b", ":::", "1", "2", ":::", "x", "y"], None, SAME, None),
    ("positions", ["-k", "echo", "{1}-{2}", ":::", "A", "B", ":::", "1", "2"], None, SAME, None),
    ("positions-swapped", ["-k", "echo", "{2}", "{1}", ":::", "A", "B", ":::", "1", "2"], None, SAME, None),
    ("position-from-end", ["-k", "echo", "{-1}", "{-2}", ":::", "A", "B", ":::", "1", "2"], None, SAME, None),
    ("repeat-value", ["-k", "echo", "{}", "{}", ":::", "a", "b"], None, SAME, None),
    ("arg-file", ["-k", "-a", "abc", "echo"], None, SAME, None),
    ("arg-file-twice", ["-k", "-a", "abc", "-a", "num", "echo"], None, SAME, None),
    ("arg-file-then-list", ["-k", "-a", "abc", "echo", ":::", "1", "2"], None, SAME, None),
    ("arg-file-long", ["-k", "--arg-file", "num", "echo", "n={}"], None, SAME, None),
    ("four-colons", ["-k", "echo", "::::", "abc"], None, SAME, None),
    ("four-colons-two-files", ["-k", "echo", "::::", "abc", "num"], None, SAME, None),
    ("four-colons-then-list", ["-k", "echo", "::::", "num", ":::", "x", "y"], None, SAME, None),
    ("list-then-file", ["-k", "echo", ":::", "x", "y", "::::", "num"], None, SAME, None),
    ("stdin-dash", ["-k", "echo", "::::", "-"], "s1\ns2\n", SAME, None),
    ("stdin-default", ["-k", "echo", "in:{}"], "s1\ns2\ns3\n", SAME, None),
    ("stdin-default-appended", ["-k", "echo"], "s1\ns2\n", SAME, None),
    ("stdin-empty-line", ["-k", "echo", "[{}]"], "a\n\nb\n", SAME, None),
    ("stdin-no-final-newline", ["-k", "echo", "[{}]"], "a\nb", SAME, None),
    ("crlf-kept", ["-k", "printf", "'%s|'", "::::", "crlf"], None, SAME, None),
    # Linked sources.
    ("linked-plus", ["-k", "echo", ":::", "A", "B", "C", "D", "E", ":::+", "F", "G"], None, SAME, None),
    ("linked-plus-third", ["-k", "echo", ":::", "A", "B", ":::", "1", "2", "3", ":::+", "x", "y"], None, SAME, None),
    ("linked-file-plus", ["-k", "echo", ":::", "A", "B", "::::+", "num"], None, SAME, None),
    ("linked-two-files", ["-k", "echo", "::::", "-", "::::+", "num"], "s1\ns2\n", SAME, None),
    ("link-wraps", ["-k", "--link", "echo", ":::", "A", "B", "C", ":::", "1", "2"], None, SAME, None),
    ("link-three", ["-k", "--link", "echo", ":::", "A", "B", "C", ":::", "1", "2", ":::", "x", "y", "z", "w"], None, SAME, None),
    ("xapply", ["-k", "--xapply", "echo", ":::", "A", "B", ":::", "1", "2"], None, SAME, None),
    # Delimiters and the end-of-file string (man parallel "-0", "--delimiter", "-E"): they cut
    # ::: values too, since parallel writes them to a file, one per item, and reads them back.
    ("null", ["-k", "-0", "echo"], "a\0b\0", SAME, None),
    ("null-long-file", ["-k", "--null", "echo", "[{}]", "::::", "nul"], None, SAME, None),
    ("null-keeps-newlines", ["-k", "-0", "echo", "[{}]"], "a\nb\0c", SAME, None),
    ("delimiter", ["-k", "-d", ",", "echo"], "a,b", SAME, None),
    ("delimiter-newline-kept", ["-k", "-d", ",", "echo", "[{}]"], "a,b\n", SAME, None),
    ("delimiter-empty-items", ["-k", "-d", ",", "echo", "[{}]"], "a,,b,", SAME, None),
    ("delimiter-long-arg-file", ["-k", "--delimiter", ",", "-a", "commas", "echo", "[{}]"], None, SAME, None),
    ("delimiter-list", ["-k", "-d", ",", "echo", "[{}]", ":::", "a,b", "c,"], None, SAME, None),
    ("delimiter-tab-escape", ["-k", "-d", "\\t", "echo", "[{}]", "::::", "tsv"], None, SAME, None),
    ("delimiter-octal", ["-k", "-d", "\\054", "echo", ":::", "a,b"], None, SAME, None),
    ("delimiter-nul-escape", ["-k", "-d", "\\0", "echo", "[{}]", "::::", "nul"], None, SAME, None),
    ("delimiter-hex-is-literal", ["-k", "-d", "\\x2c", "echo", "[{}]", ":::", "a,b"], None, SAME, None),
    ("delimiter-several-chars", ["-k", "-d", "ab", "echo", "[{}]"], "xabyabz", SAME, None),
    ("delimiter-with-colsep", ["-k", "-d", ";", "--colsep", ",", "echo", "{2}", "{1}"], "a,b;c,d;", SAME, None),
    ("delimiter-with-N", ["-k", "-N2", "-d", ",", "echo", ":::", "a,b,c,d"], None, SAME, None),
    ("newline-in-list-value", ["-k", "echo", "[{}]", ":::", "a\nb", "c"], None, SAME, None),
    ("eof-string", ["-k", "-E", "stop", "echo"], "a\nstop\nb\n", SAME, None),
    ("eof-string-long", ["-k", "--eof", "stop", "echo", "::::", "stopfile"], None, SAME, None),
    ("eof-string-list", ["-k", "-E", "stop", "echo", ":::", "a", "stop", "b"], None, SAME, None),
    ("eof-string-per-source", ["-k", "-E", "stop", "echo", ":::", "a", "b", ":::", "c", "stop", "d"], None, SAME, None),
    ("eof-string-cr-not-equal", ["-k", "-E", "a", "echo", "::::", "crlf"], None, SAME, None),
    ("eof-string-zero-is-none", ["-k", "-E", "0", "echo", ":::", "a", "0", "b"], None, SAME, None),
    ("eof-string-empty-is-none", ["-k", "-E", "", "echo", "[{}]", ":::", "a", "", "b"], None, SAME, None),
    ("eof-string-with-delimiter", ["-k", "-d", ",", "-E", "b", "echo", "[{}]"], "a,b,c", SAME, None),
    ("eof-string-empties-source", ["-k", "-E", "a", "echo", ":::", "a", "b"], None, REFUSED, "is empty"),
    ("delimiter-empty", ["-k", "-d", "", "echo"], "a\n\nb\n", REFUSED, "option -d"),
    ("delimiter-octal-not-ascii", ["-k", "-d", "\\377", "echo", ":::", "a"], None, REFUSED, "option -d"),
    # Other separators (man parallel "--arg-sep", "--arg-file-sep").
    ("arg-sep", ["-k", "--arg-sep", ",,", "echo", ",,", "a", "b"], None, SAME, None),
    ("arg-sep-colons-are-words", ["-k", "--arg-sep", ",,", "echo", ":::", ",,", "a"], None, SAME, None),
    ("arg-sep-linked", ["-k", "--arg-sep", ",,", "echo", ",,", "a", "b", ",,+", "1", "2"], None, SAME, None),
    ("arg-sep-stdin", ["-k", "--arg-sep", "XX", "echo", ":::"], "s1\ns2\n", SAME, None),
    ("arg-file-sep", ["-k", "--arg-file-sep", "//", "echo", "//", "abc"], None, SAME, None),
    ("arg-file-sep-linked", ["-k", "--arg-file-sep", "//", "echo", ":::", "x", "y", "//+", "num"], None, SAME, None),
    ("arg-file-sep-colons-are-words", ["-k", "--arg-file-sep", "//", "echo", "::::", "//", "num"], None, SAME, None),
    ("arg-seps-both", ["-k", "--arg-sep", "A", "--arg-file-sep", "B", "echo", "A", "x", "B", "num"], None, SAME, None),
    # Replacement strings (man parallel: "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}").
    ("dot", ["-k", "echo", "{.}", "::::", "paths"], None, SAME, None),
    ("slash", ["-k", "echo", "{/}", "::::", "paths"], None, SAME, None),
    ("dirname", ["-k", "echo", "{//}", "::::", "paths"], None, SAME, None),
    ("slash-dot", ["-k", "echo", "{/.}", "::::", "paths"], None, SAME, None),
    ("dot-edge", ["-k", "echo", "[{.}]", "[{/}]", "[{//}]", ":::", ".bashrc", "a/", "/", "a//b"], None, SAME, None),
    ("positional-dot", ["-k", "echo", "{1.}", "{2/}", ":::", "a.b", "c.d", ":::", "/x/y.z"], None, SAME, None),
    ("positional-all", ["-k", "echo", "{1}", "{1.}", "{1/}", "{1//}", "{1/.}", ":::", "/a/b/c.tar.gz"], None, SAME, None),
    ("negative-modified", ["-k", "echo", "{-1/.}", "{-2//}", ":::", "/p/q.r", ":::", "s/t.u"], None, SAME, None),
    ("all-dot-two-sources", ["-k", "echo", "{.}", ":::", "a.x", ":::", "b.y"], None, SAME, None),
    ("seq", ["-k", "echo", "{#}", ":::", "a", "b", "c"], None, SAME, None),
    ("seq-only", ["-k", "echo", "job", "{#}", ":::", "a", "b"], None, SAME, None),
    ("slot-j1", ["-k", "-j1", "echo", "{%}", "{}", ":::", "a", "b"], None, SAME, None),
    ("bash-braces-kept", ["-k", "echo", "{a,b}", "{1..2}", "{}", ":::", "v"], None, SAME, None),
    ("awk-braces-kept", ["-k", "echo {} | awk '{print $1}'", ":::", "w1 w2"], None, SAME, None),
    ("escaped-braces", ["-k", "echo", "\\{}", "{}", ":::", "v"], None, SAME, None),
    ("unknown-name-literal-in-parallel", ["-k", "echo", "{x}", ":::", "v"], None, REFUSED, "command template:1:6"),
    # Quoting (man parallel "QUOTING").
    ("quote-space", ["-k", "echo", ":::", "a b", "c  d"], None, SAME, None),
    ("quote-single", ["-k", "echo", ":::", "it's"], None, SAME, None),
    ("quote-dollar", ["-k", "echo", ":::", "$HOME", "`id`", "*"], None, SAME, None),
    ("inside-double-quotes", ["-k", "echo", "\"{}\"", ":::", "e=f", "a b", "plain"], None, SAME, None),
    ("command-as-one-word", ["-k", "echo {}; echo again {}", ":::", "a"], None, SAME, None),
    ("pipe-in-command", ["-k", "printf %s {} | wc -c", ":::", "abc", "hello"], None, SAME, None),
    ("redirect-stderr", ["-k", "echo out {}; echo err {} >&2", ":::", "a", "b"], None, SAME, None),
    ("shell-function-like", ["-k", "f() { echo f:$1; }; f {}", ":::", "a"], None, SAME, None),
    ("dollar-brace-var", ["-k", "X=1; echo ${X}{}", ":::", "a"], None, SAME, None),
    # No command (man parallel: "the input is the command").
    ("no-command-stdin", ["-k"], "echo one\necho two\n", SAME, None),
    ("no-command-list", ["-k", ":::", "echo a", "echo b"], None, SAME, None),
    ("no-command-file", ["-k", "::::", "cmds"], None, SAME, None),
    ("placeholder-first", ["-k", "{}", ":::", "echo x", "true"], None, SAME, None),
    ("double-dash", ["-k", "--", "echo", ":::", "a"], None, SAME, None),
    # Columns (man parallel "--colsep", "--header"; tutorial "Column separator").
    ("colsep", ["-k", "--colsep", "\t", "echo", "{2}", "{1}", "::::", "tsv"], None, SAME, None),
    ("colsep-C", ["-k", "-C", "\t", "echo", "{2}", "::::", "tsv"], None, SAME, None),
    ("colsep-backslash-t", ["-k", "--colsep", "\\t", "echo", "{2}", "::::", "tsv"], None, SAME, None),
    ("colsep-appended", ["-k", "--colsep", "\t", "echo", "::::", "tsv"], None, SAME, None),
    ("colsep-list", ["-k", "--colsep", ",", "echo", "{2}-{1}", ":::", "a,b", "c,d"], None, SAME, None),
    ("colsep-two-sources", ["-k", "--colsep", ",", "echo", "{2}", "{3}", ":::", "a,b", ":::", "c,d"], None, SAME, None),
    ("colsep-empty-field", ["-k", "--colsep", ",", "echo", "[{1}][{2}]", ":::", ",x", "y,"], None, SAME, None),
    ("header", ["-k", "--header", ":", "--colsep", "\t", "echo", "{n}-{name}", "::::", "hdr"], None, SAME, None),
    ("header-default-tab", ["-k", "--header", ":", "echo", "[{1}]", "[{2}]", "::::", "hdr"], None, SAME, None),
    ("header-lists", ["-k", "--header", ":", "echo", "{f}", "{g}", ":::", "f", "a", "b", ":::", "g", "1"], None, SAME, None),
    ("colsep-regex", ["-k", "--colsep", ", *", "echo", "{2}", ":::", "a,  b"], None, REFUSED, "option -C/--colsep"),
    ("colsep-uneven", ["-k", "--colsep", ",", "echo", ":::", "a,b", "c,d,"], None, REFUSED, "value 2 has 3 column(s)"),
    ("header-number", ["-k", "--header", "1", "echo", "::::", "hdr"], None, REFUSED, "option --header"),
    # Output.
    ("no-newline", ["-k", "printf", "{}", ":::", "a", "b"], None, SAME, None),
    ("cr-kept", ["-k", "printf", "'%s\\r\\n'", ":::", "a"], None, SAME, None),
    ("cr-at-end", ["-k", "printf", "'%s\\r'", ":::", "a"], None, SAME, None),
    ("empty-output", ["-k", "true", ":::", "a"], None, SAME, None),
    ("tag", ["-k", "--tag", "echo", ":::", "a", "b"], None, SAME, None),
    ("tag-two-sources", ["-k", "--tag", "echo", ":::", "a", "b", ":::", "1"], None, SAME, None),
    ("tag-multiline", ["-k", "--tag", "printf 'x\\ny\\n'", ":::", "t"], None, SAME, None),
    ("tagstring", ["-k", "--tagstring", "{}-X", "echo", ":::", "a", "b"], None, SAME, None),
    ("tagstring-seq", ["-k", "--tagstring", "T{#}", "echo", ":::", "a", "b"], None, SAME, None),
    ("tagstring-modifier", ["-k", "--tagstring", "{/.}", "echo", ":::", "/d/f.txt"], None, SAME, None),
    ("keep-order-long", ["--keep-order", "sleep 0.{}; echo {}", ":::", "3", "1", "2"], None, SAME, None),
    ("keep-order-slots", ["-k", "-j3", "sleep 0.{}; echo {}", ":::", "3", "1", "2"], None, SAME, None),
    ("jobs-long", ["-k", "--jobs", "2", "echo", ":::", "a", "b", "c"], None, SAME, None),
    # Exit status and retries (man parallel "EXIT STATUS", "--retries").
    ("exit-one-failed", ["-k", "exit {}", ":::", "0", "1"], None, SAME, None),
    ("exit-three-failed", ["-k", "exit {}", ":::", "0", "1", "2", "3"], None, SAME, None),
    ("exit-ok-output", ["-k", "echo {}; exit 0", ":::", "a"], None, SAME, None),
    ("retries-counts-tries",
     ["-k", "--retries", "3", "echo try >> tries.{}; [ $(wc -l < tries.{}) -ge 3 ] && cat tries.{} | wc -l", ":::", "a"],
     None, SAME, None),
    ("retries-too-few",
     ["-k", "--retries", "2", "echo try >> t2.{}; echo out$(wc -l < t2.{}); [ $(wc -l < t2.{}) -ge 3 ]", ":::", "a"],
     None, SAME, None),
    ("halt-soon", ["-k", "-j1", "--halt", "soon,fail=1", "echo {}; exit {}", ":::", "0", "1", "0"], None, SAME, None),
    # Environment (man parallel "$PARALLEL_SEQ", "$PARALLEL_JOBSLOT").
    ("env-seq", ["-k", "echo $PARALLEL_SEQ {}", ":::", "a", "b"], None, SAME, None),
    ("env-jobslot-j1", ["-k", "-j1", "echo $PARALLEL_JOBSLOT {}", ":::", "a", "b"], None, SAME, None),
    # Refused: Perl expressions and tokens of the grammar sortie does not understand.
    ("perl-expression", ["-k", "echo", "{=s/a/b/=}", ":::", "a"], None, REFUSED, "command template:1:6"),
    ("perl-expression-spaced", ["-k", "echo", "{= $_ = uc($_) =}", ":::", "a"], None, REFUSED, "command template:1:6"),
    ("positional-perl", ["-k", "echo", "{1= $_ .= 1 =}", ":::", "a"], None, REFUSED, "command template:1:6"),
    ("position-hash", ["-k", "echo", "{1#}", ":::", "a"], None, REFUSED, "command template:1:6"),
    ("position-out-of-range", ["-k", "echo", "{3}", ":::", "a", ":::", "b"], None, REFUSED, "command template:1:6"),
    ("position-zero", ["-k", "echo", "{0}", ":::", "a"], None, REFUSED, "command template:1:6"),
    # Refused: options (man parallel) sortie does not have or spells otherwise.
    ("max-replace-args", ["-k", "-N2", "echo", ":::", "A", "B", "C", "D"], None, SAME, None),
    ("max-replace-args-positions", ["-k", "-N2", "echo", "{2}-{1}", "{#}", ":::", "A", "B", "C", "D"], None, SAME, None),
    ("max-replace-args-stdin", ["-k", "-N", "3", "echo", "{3}"], "a\nb\nc\nd\ne\nf\n", SAME, None),
    ("max-replace-args-context", ["-k", "-N2", "echo", "[{}]", ":::", "A", "B", "C", "D"], None, REFUSED, "command template:1:7"),
    ("max-replace-args-partial", ["-k", "-N2", "echo", ":::", "A", "B", "C"], None, REFUSED, "do not make jobs of 2"),
    ("max-replace-args-two-sources", ["-k", "-N2", "echo", "{1}", ":::", "A", "B", ":::", "x"], None, REFUSED, "option -N"),
    ("max-args-n", ["-k", "-n", "2", "echo", ":::", "A", "B", "C", "D"], None, SAME, None),
    ("max-args-partial", ["-k", "-n2", "echo", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-long-braces", ["-k", "--max-args", "2", "echo", "[{}]", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-modifier", ["-k", "-n3", "echo", "[{.}]", ":::", "a.x", "b.y", "c", "d.z"], None, SAME, None),
    ("max-args-positions", ["-k", "-n2", "echo", "{#}-{1}-[{2}]", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-stdin", ["-k", "-n", "2", "echo"], "a\nb\nc\n", SAME, None),
    ("max-args-quoted", ["-k", "-n2", "echo", "\"{}\"", ":::", "a b", "c", "d"], None, SAME, None),
    ("max-args-tag", ["-k", "-n2", "--tag", "echo", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-with-m", ["-k", "-m", "-n2", "echo", "[{}]", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-env-seq", ["-k", "-n2", "echo $PARALLEL_SEQ", ":::", "A", "B", "C"], None, SAME, None),
    ("max-args-one", ["-k", "-n1", "echo", "[{}]", ":::", "A", "B"], None, SAME, None),
    ("max-args-no-command", ["-k", "-n2", ":::", "echo", "a", "echo", "b"], None, SAME, None),
    ("max-args-delimiter", ["-k", "-n2", "-d", ",", "echo"], "a,b,c", SAME, None),
    ("max-args-from-end", ["-k", "-n2", "echo", "[{-1}]", ":::", "A", "B", "C"], None, REFUSED, "command template:1:7"),
    ("max-args-two-sources", ["-k", "-n2", "echo", ":::", "A", "B", ":::", "1", "2"], None, REFUSED, "option -n"),
    ("max-args-zero", ["-k", "-n0", "echo", "x", ":::", "A"], None, REFUSED, "--max-args"),
    ("max-args-and-N", ["-k", "-n2", "-N2", "echo", ":::", "A", "B"], None, REFUSED, "--max-args"),
    ("xargs-long", ["-k", "--xargs", "echo", ":::", "A", "B"], None, REFUSED, "option --xargs"),
    ("xargs-X-with-n", ["-k", "-X", "-n2", "echo", "[{}]", ":::", "A", "B", "C"], None, REFUSED, "option -X"),
    ("xargs-X", ["-k", "-X", "echo", ":::", "A", "B"], None, REFUSED, "option -X"),
    ("xargs-m", ["-k", "-m", "echo", ":::", "A", "B"], None, REFUSED, "option -m"),
    ("xargs-x", ["-k", "-x", "echo", ":::", "A", "B"], None, REFUSED, "option -x"),
    ("quote-q", ["-k", "-q", "echo", "a b", ":::", "1"], None, REFUSED, "option -q"),
    ("replace-I", ["-k", "-I", "XX", "echo", "XX", ":::", "a"], None, REFUSED, "option -I"),
    ("replace-i", ["-k", "-i", "echo", "{}", ":::", "a"], None, REFUSED, "option -i"),
    ("max-lines-l", ["-k", "-l", "echo"], "a\n", REFUSED, "option -l"),
    ("verbose-t", ["-k", "-t", "echo", ":::", "a"], None, REFUSED, "option -t"),
    ("interactive-p", ["-k", "-p", "echo", ":::", "a"], None, REFUSED, "option -p"),
    ("results-dir", ["-k", "--results", "out", "echo", ":::", "a"], None, REFUSED, "option --results"),
    ("results-csv", ["-k", "--results", "out.csv", "echo", ":::", "a"], None, REFUSED, "option --results"),
    ("results-template", ["-k", "--results", "my_{}", "echo", ":::", "a"], None, REFUSED, "option --results"),
    ("ungroup", ["-k", "-u", "echo", ":::", "a"], None, REFUSED, "option -u"),
    ("sshlogin", ["-k", "-S", "localhost", "echo", ":::", "a"], None, REFUSED, "option -S"),
    ("jobs-percent", ["-k", "-j", "50%", "echo", ":::", "a"], None, REFUSED, "'50%'"),
    ("jobs-plus", ["-k", "-j", "+2", "echo", ":::", "a"], None, REFUSED, "'+2'"),
    ("jobs-zero", ["-k", "-j0", "echo", ":::", "a"], None, REFUSED, "'0'"),
    ("pipe", ["-k", "--pipe", "wc", "-l"], "a\nb\n", REFUSED, "option --pipe"),
    ("empty-list", ["-k", "echo", ":::", "a", ":::"], None, REFUSED, "empty `:::` group"),
]


def run_case(argv, stdin, workdir):
    env = dict(os.environ, HOME=workdir, LC_ALL="C.UTF-8")
    p = subprocess.run(["parallel", *argv], input=(stdin or "").encode(), cwd=workdir,
                       capture_output=True, env=env, timeout=60)
    return p.stdout.decode(), p.stderr.decode(), p.returncode


def main():
    version = subprocess.run(["parallel", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    out = {"parallel": version, "files": FILES, "cases": []}
    names = set()
    for name, argv, stdin, expect, where in CASES:
        assert name not in names, name
        names.add(name)
        with tempfile.TemporaryDirectory() as d:
            for f, text in FILES.items():
                with open(os.path.join(d, f), "w") as fh:
                    fh.write(text)
            stdout, stderr, code = run_case(argv, stdin, d)
        case = {"name": name, "args": argv, "stdin": stdin, "expect": expect,
                "stdout": stdout, "stderr": stderr, "exit": code}
        if where:
            case["where"] = where
        if name in OWN_DIAGNOSTICS:
            case["compare_stderr"] = False
        if name in SHELL_DIFFERS:
            case["known_difference"] = SHELL_DIFFERS[name]
        out["cases"].append(case)
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "sortie-cli", "tests", "data",
                        "parallel_conformance.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"{len(out['cases'])} cases written to {os.path.normpath(path)} ({version})")


if __name__ == "__main__":
    main()
