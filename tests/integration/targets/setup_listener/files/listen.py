"""Listen on a TCP port on 127.0.0.1 for a while, as an unregistered daemon would.

Usage: listen.py PORT PIDFILE. Exits by itself after two minutes so a failed
test run never leaves it behind.
"""

import os
import socket
import sys
import time

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(1)
with open(sys.argv[2], "w") as handle:
    handle.write(str(os.getpid()))
time.sleep(120)
