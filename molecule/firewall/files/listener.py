"""Accept TCP connections on the given ports (all addresses), answer "ok" and close: a stand-in
for the services whose ports the firewall guards."""

import selectors
import socket
import sys


def main(ports):
    sel = selectors.DefaultSelector()
    for port in ports:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(64)
        sel.register(srv, selectors.EVENT_READ)
    while True:
        for key, _events in sel.select():
            conn, _addr = key.fileobj.accept()
            try:
                conn.sendall(b"ok\n")
            finally:
                conn.close()


if __name__ == "__main__":
    main([int(p) for p in sys.argv[1:]])
