"""A stand-in agent CLI for runner and provider tests: replays a scenario file.

Usage: replay.py [ARGS...] with FAKE_SCENARIO naming the scenario file (or
FAKE_SCENARIO_DIR: the scenario is the file named by the prompt's first word plus
``.txt`` in that folder, the prompt read from stdin) and, if FAKE_DUMP is set, a
JSON dump of argv, environment and stdin written there first.
Each scenario line is printed to stdout as is (flushed, so the reader sees it at
once), except directives starting with ``#!``:

    #!read_stdin              read stdin to EOF before going on (done anyway for the dump)
    #!sleep SECONDS
    #!wait_file PATH          wait until PATH exists (the test's "go on" signal)
    #!stderr BYTES            write BYTES bytes to stderr in 64 KiB writes
    #!stderr_text TEXT        write TEXT and a newline to stderr
    #!big BYTES               print one JSON object line of about BYTES bytes
    #!lines COUNT [PAD]       print COUNT JSON lines {"type":"tick","n":i,"pad":"..."}
    #!ticks INTERVAL          print a tick line every INTERVAL seconds, forever
    #!raw TEXT                print TEXT without a newline
    #!endless_line            print one line that never ends, as fast as the pipe takes it
    #!trickle INTERVAL        print one byte every INTERVAL seconds, never a newline, forever
    #!ignore_term             ignore SIGTERM from now on
    #!grandchild PIDFILE      start a grandchild (same group) that ignores SIGTERM, sleeps,
                              and keeps stdout open; its pid goes to PIDFILE
    #!pidfile PATH            write our own pid to PATH
    #!piddir DIR              write our own pid as a file name in DIR
    #!hang                    sleep forever
    #!exit CODE               exit with CODE at once
    #!exit_if_stream CODE     exit with CODE at once when started with --input-format stream-json
    #!control_reply           read one stdin line; a control_request gets its control_response
                              (Claude Code's stream-json protocol: how a spare is primed)
    #!stdin_line              read one stdin line (a stream-json user message) and append it
                              to the file FAKE_LINES names

With FAKE_STREAM_INPUT=1 nothing reads stdin up front (a spare waits for its lines).
"""

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    stdin_data = ""
    dump = os.environ.get("FAKE_DUMP")
    if dump and os.environ.get("FAKE_STREAM_INPUT") == "1":
        with open(dump, "w") as f:
            json.dump({"argv": sys.argv, "env": dict(os.environ), "stdin": ""}, f)
    elif dump:
        if not sys.stdin.closed:
            stdin_data = sys.stdin.read()
        with open(dump, "w") as f:
            json.dump({"argv": sys.argv, "env": dict(os.environ), "stdin": stdin_data}, f)
    out = sys.stdout.buffer
    scenario_path = os.environ.get("FAKE_SCENARIO", "")
    folder = os.environ.get("FAKE_SCENARIO_DIR")
    if folder:
        if not dump:
            stdin_data = sys.stdin.read()
        scenario_path = os.path.join(folder, (stdin_data.split() or ["default"])[0] + ".txt")
    with open(scenario_path, "rb") as f:
        lines = f.read().splitlines()
    for raw in lines:
        if not raw.startswith(b"#!"):
            out.write(raw + b"\n")
            out.flush()
            continue
        word, _, arg = raw[2:].decode().partition(" ")
        if word == "read_stdin":
            if not dump:
                sys.stdin.read()
        elif word == "sleep":
            time.sleep(float(arg))
        elif word == "wait_file":
            while not os.path.exists(arg):
                time.sleep(0.005)
        elif word == "stderr":
            left = int(arg)
            block = b"e" * 65535 + b"\n"
            while left > 0:
                sys.stderr.buffer.write(block[:left])
                left -= len(block)
            sys.stderr.buffer.flush()
        elif word == "stderr_text":
            sys.stderr.write(arg + "\n")
            sys.stderr.flush()
        elif word == "big":
            out.write(b'{"type":"big","data":"' + b"x" * int(arg) + b'"}\n')
            out.flush()
        elif word == "lines":
            count, _, pad = arg.partition(" ")
            filler = b"p" * int(pad or 0)
            for i in range(int(count)):
                out.write(b'{"type":"tick","n":%d,"pad":"%s"}\n' % (i, filler))
            out.flush()
        elif word == "ticks":
            n = 0
            while True:
                out.write(b'{"type":"tick","n":%d}\n' % n)
                out.flush()
                n += 1
                time.sleep(float(arg))
        elif word == "raw":
            out.write(arg.encode())
            out.flush()
        elif word == "endless_line":
            block = b'{"type":"text","text":"' + b"x" * 65536
            out.write(block)
            block = b"x" * 65536
            while True:
                out.write(block)
                out.flush()
        elif word == "trickle":
            while True:
                out.write(b"x")
                out.flush()
                time.sleep(float(arg))
        elif word == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif word == "grandchild":
            code = "import signal,time;signal.signal(signal.SIGTERM,signal.SIG_IGN);time.sleep(600)"
            child = subprocess.Popen([sys.executable, "-c", code])
            with open(arg, "w") as f:
                f.write(str(child.pid))
        elif word == "pidfile":
            with open(arg, "w") as f:
                f.write(str(os.getpid()))
        elif word == "piddir":
            with open(os.path.join(arg, str(os.getpid())), "w"):
                pass
        elif word == "hang":
            time.sleep(3600)
        elif word == "exit":
            return int(arg)
        elif word == "exit_if_stream":
            if "--input-format" in sys.argv:
                return int(arg)
        elif word == "control_reply":
            _control_reply(out)
        elif word == "stdin_line":
            line = sys.stdin.readline()
            record = os.environ.get("FAKE_LINES")
            if record:
                with open(record, "a") as f:
                    f.write(line if line.endswith("\n") else line + "\n")
    return 0


def _control_reply(out: "object") -> None:
    line = sys.stdin.readline()
    try:
        request = json.loads(line)
    except ValueError:
        return  # a cold run: this was the prompt
    if isinstance(request, dict) and request.get("type") == "control_request":
        reply = {
            "type": "control_response",
            "response": {
                "subtype": "success",
                "request_id": request.get("request_id"),
                "response": {},
            },
        }
        out.write((json.dumps(reply) + "\n").encode())  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
