"""Test client: GET URL at RATE requests a second, forever; every answer (200 or 500) is fine."""

import sys
import time
import urllib.error
import urllib.request

URL, RATE = sys.argv[1], float(sys.argv[2])

while True:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(URL, timeout=2) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        exc.read()
    except OSError:
        time.sleep(1)
    time.sleep(max(0.0, 1 / RATE - (time.monotonic() - started)))
