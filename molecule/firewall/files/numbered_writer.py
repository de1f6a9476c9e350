"""Write lines 1..COUNT to PATH (append), one every INTERVAL seconds, reopening PATH on SIGHUP the
way an app that supports log rotation does. With an http:// PATH, request PATH/<n> instead (nginx
writes the numbered lines to its access log). Used to prove a rotation loses no line."""

import contextlib
import signal
import sys
import time
import urllib.error
import urllib.request


def request_lines(url, count, interval):
    for n in range(1, count + 1):
        with contextlib.suppress(urllib.error.HTTPError):  # a 404 is logged like any other request
            urllib.request.urlopen(f"{url}/{n}", timeout=5).close()
        time.sleep(interval)


def main(path, count, interval):
    if path.startswith("http://"):
        request_lines(path, count, interval)
        return
    reopen = False

    def on_hup(_signum, _frame):
        nonlocal reopen
        reopen = True

    signal.signal(signal.SIGHUP, on_hup)
    out = open(path, "a", buffering=1)  # noqa: SIM115 - reopened on SIGHUP
    for n in range(1, count + 1):
        if reopen:
            reopen = False
            out.close()
            out = open(path, "a", buffering=1)  # noqa: SIM115
        out.write(f"line {n}\n")
        time.sleep(interval)
    out.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
