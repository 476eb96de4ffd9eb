"""The end of a queue is mailed through the setup file's SMTP server (here a minimal SMTP
server on loopback in the test) and announced by a command."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes, policy

import yaml

import hbtscope
from hbtscope.queue.engine import QueueEngine
from hbtscope.queue.spec import parse_queue_text
from hbtscope.setup import default_setup_path


class _SMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to take one message."""

    def handle(self) -> None:
        def say(line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        say("220 loopback test SMTP")
        envelope = {"to": []}
        while True:
            line = self.rfile.readline().decode().strip()
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 loopback")
            elif verb == "MAIL":
                envelope["from"] = line
                say("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(line)
                say("250 OK")
            elif verb == "DATA":
                say("354 go ahead")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    # RFC 5321 4.5.2: the client doubles a leading dot (a quoted-printable
                    # line of a long path may start with ".html"); the server removes it
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                envelope["message"] = message_from_bytes(data, policy=policy.default)
                self.server.received.append(envelope)
                say("250 queued")
            elif verb == "QUIT" or not line:
                say("221 bye")
                return
            else:
                say("502 not here")


def test_the_queue_end_is_mailed_and_announced(tmp_path):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = yaml.safe_load(default_setup_path().read_text())
        data["notify"] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": server.server_address[1],
            "sender": "microscope@lab.example",
        }
        setup_file = tmp_path / "setup.yaml"
        setup_file.write_text(yaml.safe_dump(data, sort_keys=False))
        marker = tmp_path / "announced.txt"
        queue = f"""
name: mailed
notify:
  mail_to: [night-shift@lab.example]
  command: [sh, -c, 'echo "$HBTSCOPE_QUEUE_STATUS $HBTSCOPE_QUEUE_DIR" > {marker}']
items:
  - {{measurement: g2, parameters: {{duration_s: 0.2}}}}
  - {{measurement: g2, parameters: {{duration_s: 0.2, laser_power_W: 5.0e-3}}}}
"""
        with hbtscope.open_setup(setup_file) as setup:
            QueueEngine(parse_queue_text(queue), setup, tmp_path / "q").run()
    finally:
        server.shutdown()
        server.server_close()
    (mail,) = server.received
    assert "night-shift@lab.example" in mail["to"][0]
    msg = mail["message"]
    assert msg["Subject"] == "hbtscope queue mailed: finished"
    assert msg["From"] == "microscope@lab.example"
    body = msg.get_content()
    assert "1 finished" in body and "1 failed" in body and "max_power_W" in body
    assert "report.html" in body
    assert marker.read_text().split() == ["finished", str(tmp_path / "q")]
