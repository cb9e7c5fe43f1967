"""`robot-stack sketch draw`: pixels to base-frame points, POST validation, and the page driven in a real browser.

The browser test runs the command as a subprocess and drives its page in headless Chromium through the
Chrome DevTools Protocol with synthetic mouse events (pointer events in the page), then checks the saved
sketch's pixels where the strokes and markers were drawn and that FILE.json reproduces FILE.png.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from robot_stack.sketch_draw import (DrawingError, DrawSession, drawing_waypoints, gripper_commands, parse_drawing,
                                     pixels_to_base, save_drawing)
from robot_stack.sketches import SketchStyle, draw_sketch, project_points, waypoint_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# a camera looking down at the table from 0.6 m, tilted like the twin's front camera
_K = np.array([[154.5, 0.0, 63.5], [0.0, 154.5, 63.5], [0.0, 0.0, 1.0]])
_C, _S = np.cos(0.73), np.sin(0.73)
_T = np.array([[0.0, _C, -_S, 1.0], [1.0, 0.0, 0.0, -0.06], [0.0, -_S, -_C, 0.62], [0, 0, 0, 1]])


def _points(*uvh, events=None):
    events = events or {}
    return [{"u": u, "v": v, "height": h, "event": events.get(i)} for i, (u, v, h) in enumerate(uvh)]


def test_pixels_to_base_lands_on_the_plane_and_projects_back_onto_the_pixel():
    uv = np.array([[10.0, 120.0], [63.5, 63.5], [100.2, 30.7]])
    heights = np.array([0.0, 0.1, 0.3])
    xyz = pixels_to_base(uv, heights, _K, _T)
    np.testing.assert_allclose(xyz[:, 2], heights, atol=1e-12)
    back, depth = project_points(xyz, _K, _T)
    np.testing.assert_allclose(back, uv, atol=1e-9)
    assert (depth > 0).all()


def test_a_plane_above_the_camera_is_refused_with_the_pixel_named():
    with pytest.raises(DrawingError, match=r"point 0: .*pixel \(10.0, 120.0\)"):
        pixels_to_base(np.array([[10.0, 120.0]]), np.array([1.0]), _K, _T)      # the camera is at 0.62 m


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b'[1, 2]', "expected"),
    (b'{"strokes": []}', "nothing drawn"),
    (b'{"strokes": [[]]}', "stroke 0 is empty"),
    (b'{"strokes": [[{"u": NaN, "v": 1, "height": 0.1}, {"u": 2, "v": 1, "height": 0.1}]]}', "non-finite"),
    (b'{"strokes": [[{"u": 1e999, "v": 1, "height": 0.1}, {"u": 2, "v": 1, "height": 0.1}]]}', "finite"),
    (b'{"strokes": [[{"u": true, "v": 1, "height": 0.1}, {"u": 2, "v": 1, "height": 0.1}]]}', "number"),
    (b'{"strokes": [[{"u": 1, "v": 1}, {"u": 2, "v": 1, "height": 0.1}]]}', "height must be a number"),
    (b'{"strokes": [[{"u": 500, "v": 1, "height": 0.1}, {"u": 2, "v": 1, "height": 0.1}]]}', "outside the 128x128"),
    (b'{"strokes": [[{"u": 1, "v": 1, "height": 0.1, "event": "grab"}, {"u": 2, "v": 1, "height": 0.1}]]}', "event"),
    (b'{"strokes": [[{"u": 1, "v": 1, "height": 0.1}]]}', "at least two points"),
])
def test_bad_drawings_are_refused_with_the_reason(body, message):
    with pytest.raises(DrawingError, match=message):
        parse_drawing(body, 128, 128)


def test_markers_switch_the_gripper_and_redundant_ones_are_refused():
    pts = _points((1, 1, .1), (2, 1, .1), (3, 1, .1), (4, 1, .1), events={1: "close", 3: "open"})
    assert gripper_commands(pts) == [0.0, 1.0, 1.0, 0.0]
    with pytest.raises(DrawingError, match="point 2: a close marker while the gripper is already closed"):
        gripper_commands(_points((1, 1, .1), (2, 1, .1), (3, 1, .1), events={1: "close", 2: "close"}))
    with pytest.raises(DrawingError, match="point 0: an open marker while the gripper is open"):
        gripper_commands(_points((1, 1, .1), (2, 1, .1), events={0: "open"}))


def test_a_close_on_the_first_point_still_draws_its_marker():
    waypoints = drawing_waypoints(_points((40, 100, .02), (80, 60, .2), events={0: "close"}), _K, _T)
    assert [w["gripper"] for w in waypoints] == [0.0, 1.0, 1.0]       # an open start was put before it
    path, cmd = waypoint_path(waypoints)
    sketch = draw_sketch(path, cmd, _K, _T, 128, 128, SketchStyle())
    assert tuple(sketch[100, 40]) == (0, 255, 0)


def test_save_refuses_a_path_outside_the_workspace_and_writes_nothing(tmp_path):
    session = DrawSession(image=np.zeros((128, 128, 3), np.uint8), k=_K, base_T_camera=_T, out=tmp_path / "s.png",
                          workspace=((0.3, -0.3, 0.0), (0.7, 0.3, 0.4)))
    body = json.dumps({"strokes": [[{"u": 0, "v": 127, "height": 0.1}, {"u": 64, "v": 64, "height": 0.1}]]})
    with pytest.raises(DrawingError, match="outside the workspace"):
        save_drawing(body.encode(), session)
    assert not list(tmp_path.iterdir()) and session.result is None


# --- the real page in a real browser ----------------------------------------------------------------------------

class Cdp:
    """A minimal Chrome DevTools Protocol client on one page target."""

    def __init__(self, ws_url: str):
        import websocket
        # no Origin header: Chromium refuses DevTools websockets from origins it was not told to allow
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float, pressed: bool = False):
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left" if pressed or kind != "mouseMoved"
                  else "none", buttons=1 if pressed else 0, clickCount=1 if kind != "mouseMoved" else 0)

    def click(self, x: float, y: float):
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, pressed=True)
        self.mouse("mouseReleased", x, y)

    def click_element(self, element_id: str):
        r = self.eval(f"(() => {{ const r = document.getElementById('{element_id}').getBoundingClientRect(); "
                      "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        self.click(*r)

    def close(self):
        self.ws.close()


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _start_chromium(profile: Path) -> tuple[subprocess.Popen, Cdp]:
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1200,800",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    active = profile / "DevToolsActivePort"
    # Chromium writes the port it picked (port 0: any free one) into the profile once DevTools listens
    _wait(lambda: active.exists() and len(active.read_text().split()) >= 2, 30, "Chromium's DevTools port")
    port = int(active.read_text().split()[0])

    def page_ws():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
        except OSError:
            return None
        return pages[0]["webSocketDebuggerUrl"] if pages else None
    return browser, Cdp(_wait(page_ws, 10, "a page target"))


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url + "done", data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (scripts/setup.sh installs it as root: apt chromium)")
def test_drawing_in_a_browser_writes_the_sketch_and_its_waypoints(tmp_path):
    import cv2

    out = tmp_path / "drawn.png"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    tool = subprocess.Popen([sys.executable, "-m", "robot_stack.cli", "sketch", "draw", "--robot", "panda",
                             "--task", "pick_place", "--seed", "3", "--out", str(out), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    browser = cdp = None
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    try:
        line = tool.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL printed: {line!r} {tool.stderr.read() if tool.poll() is not None else ''}"
        url = match.group(0)

        # bad POSTs: a clear reason each, and the tool keeps serving
        for body, reason in [(b"{oops", "not JSON"), (b'{"strokes": [[{"u": NaN, "v": 1, "height": 0.1}]]}',
                                                      "non-finite"), (b'{"strokes": []}', "nothing drawn")]:
            code, reply = _post(url, body)
            assert code == 400 and reason in reply["error"], (code, reply)
        assert tool.poll() is None and not out.exists()

        browser, cdp = _start_chromium(profile)
        cdp.call("Page.navigate", url=url)
        _wait(lambda: cdp.eval("document.readyState === 'complete' && image.complete && image.naturalWidth === 128"),
              10, "the page and the camera image")
        left, top, zoom = cdp.eval("(() => { const r = canvas.getBoundingClientRect(); "
                                   "return [r.left + canvas.clientLeft, r.top + canvas.clientTop, "
                                   "canvas.clientWidth / 128]; })()")
        assert zoom >= 2      # shown enlarged

        def screen(u, v):                    # image pixel centre -> page coordinates
            return left + (u + 0.5) * zoom, top + (v + 0.5) * zoom

        def set_height(metres):
            cdp.click_element("height-number")
            cdp.eval("heightNumber.select()")
            cdp.call("Input.insertText", text=str(metres))
            assert cdp.eval("height") == pytest.approx(metres)

        def stroke(a, b, steps):
            cdp.mouse("mouseMoved", *screen(*a))
            cdp.mouse("mousePressed", *screen(*a), pressed=True)
            for s in range(1, steps + 1):
                cdp.mouse("mouseMoved", *screen(a[0] + (b[0] - a[0]) * s / steps, a[1] + (b[1] - a[1]) * s / steps),
                          pressed=True)
            cdp.mouse("mouseReleased", *screen(*b))

        # "Done" with nothing drawn: the page shows the server's reason, nothing is written
        cdp.click_element("done")
        _wait(lambda: "nothing drawn" in cdp.eval("document.getElementById('status').textContent"), 5,
              "the error on the page")
        assert not out.exists()

        set_height(0.1)
        stroke((30, 100), (60, 90), 10)            # low and to the left first ...
        set_height(0.25)
        stroke((60, 88), (96, 52), 18)             # ... then up and to the right, higher
        cdp.click_element("mode-close")
        cdp.click(*screen(60, 90))                 # the gripper closes at the end of the first stroke
        cdp.click_element("mode-open")
        cdp.click(*screen(78, 70))                 # and opens halfway along the second
        assert cdp.eval("strokes.length") == 2
        cdp.click_element("done")
        assert tool.wait(timeout=15) == 0, tool.stderr.read()
        _wait(lambda: cdp.eval("document.body.dataset.saved === '1'"), 5, "the page to report the save")
    finally:
        if cdp is not None:
            cdp.close()
        if browser is not None:
            os.killpg(browser.pid, 9)
            browser.wait()
        if tool.poll() is None:
            tool.kill()
            tool.wait()

    raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.shape == (128, 128, 3) and raw.dtype == np.uint8
    sketch = raw[:, :, ::-1]
    # time-graded red: dark where the drawing started, bright where it ended; 2.5D green grows with height
    first, middle, last = sketch[100, 30].astype(int), sketch[84, 64].astype(int), sketch[52, 96].astype(int)
    assert 0 < first[0] < 80 and first[2] == 0, first
    assert first[0] < middle[0] < last[0] and last[0] > 220, (first, middle, last)
    assert abs(first[1] - 0.1 / 0.4 * 255) < 25 and abs(last[1] - 0.25 / 0.4 * 255) < 25, (first, last)
    assert tuple(sketch[90, 60]) == (0, 255, 0)    # the close marker where it was clicked
    assert tuple(sketch[70, 78]) == (0, 0, 255)    # the open marker
    assert not sketch[10:40, 5:40].any()           # nothing drawn where no stroke went

    waypoints = json.loads(out.with_suffix(".json").read_text())
    assert all(w["gripper"] in (0.0, 1.0) for w in waypoints)
    heights = [w["position"][2] for w in waypoints]
    assert heights[0] == pytest.approx(0.1) and heights[-1] == pytest.approx(0.25)
    from robot_stack.sim.camera import calibration
    from robot_stack.sim.scene import Scene
    cal = calibration(Scene("panda"), ["front"], 128, 128)["front"]
    k, t = np.array(cal["k"]), np.array(cal["base_T_camera"])
    uv, _ = project_points(np.array([waypoints[0]["position"], waypoints[-1]["position"]]), k, t)
    np.testing.assert_allclose(uv, [[30, 100], [96, 52]], atol=0.02)   # the first and last points where drawn
    # FILE.json is a waypoint file eval reads: through waypoint_path it draws FILE.png exactly
    path, gripper = waypoint_path(waypoints)
    np.testing.assert_array_equal(draw_sketch(path, gripper, k, t, 128, 128, SketchStyle(mode="2.5d")), sketch)


def test_publish_reaches_a_latched_subscriber():
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy = pytest.importorskip("rclpy")
    from sensor_msgs.msg import Image

    from robot_stack.child_graph import BackgroundSpin
    from robot_stack.ros import convert, qos
    from robot_stack.sketch_draw import publish_sketch

    sketch = np.zeros((128, 128, 3), np.uint8)
    sketch[40:60, 30:90, 0] = 200
    context = rclpy.Context()
    rclpy.init(context=context)
    spin = BackgroundSpin(context=context)
    try:
        received = []
        node = spin.add(rclpy.create_node("sketch_listener", context=context))
        node.create_subscription(Image, "/task/sketch", received.append, qos.LATCHED)
        assert publish_sketch(sketch, wait=10.0) == 1
        _wait(lambda: received, 10, "the sketch message")
        np.testing.assert_array_equal(convert.parse_image(received[0]), sketch)
    finally:
        spin.close()


def test_the_server_listens_on_localhost_only_and_answers_bad_requests(tmp_path):
    import http.client
    import threading

    from robot_stack.sketch_draw import make_server

    session = DrawSession(image=np.full((128, 128, 3), 90, np.uint8), k=_K, base_T_camera=_T, out=tmp_path / "s.png")
    server = make_server(session, 0)
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def request(method, path, body=b"", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        return reply.status, data

    try:
        assert request("GET", "/nothing")[0] == 404
        assert request("POST", "/elsewhere", b"{}")[0] == 404
        code, data = request("POST", "/done", b"x", {"Content-Length": str(64 << 20)})
        assert code == 413 and b"at most" in data
        code, data = request("GET", "/image.png")
        assert code == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert not session.done.is_set()
        good = {"strokes": [[{"u": 40, "v": 100, "height": 0.05}, {"u": 80, "v": 70, "height": 0.2, "event": "close"}]]}
        code, data = request("POST", "/done", json.dumps(good).encode(), {"Content-Type": "application/json"})
        assert code == 200 and json.loads(data)["preview"].startswith("data:image/png;base64,")
        assert session.done.wait(5) and (tmp_path / "s.png").is_file() and (tmp_path / "s.json").is_file()
    finally:
        server.shutdown()
        server.server_close()


def test_the_cli_refuses_an_output_that_is_not_png(capsys):
    from robot_stack.cli import main

    assert main(["sketch", "draw", "--out", "sketch.jpg"]) == 2
    assert "--out must name a .png file" in capsys.readouterr().err
