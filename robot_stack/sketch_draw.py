"""`robot-stack sketch draw`: a person draws an RT-Trajectory sketch on the twin's live front image.

The twin is reset to the seed and its front camera rendered at the policy camera's size. A small web
page, served on 127.0.0.1 only (the drawing is local work, and the server accepts writes), shows that
image enlarged; the person draws strokes with the mouse (drawing order is time), marks where the gripper
closes and opens on the stroke, and sets a height for the points that follow. "Done" POSTs the pixel
waypoints; each pixel becomes a base-frame 3D point where its camera ray meets the horizontal plane at
the chosen height, and the result is drawn by robot_stack.sketches (waypoint_path + draw_sketch, the same
code as hindsight sketches and as `eval --sketch-waypoints`), so a drawn sketch looks like the training
sketches and FILE.json reproduces FILE.png exactly. A bad POST gets a 400 with the reason and the page
stays up for the next try; the command exits once a drawing is saved.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from robot_stack.sketches import SketchError, SketchStyle, check_in_workspace, draw_sketch, waypoint_path

CAMERA = "front"                 # the policy camera sketches are drawn in (DataSpec.goal_camera of the sketch policy)
MAX_BODY = 4 << 20               # bytes: thousands of points fit; a runaway client does not exhaust memory
MAX_POINTS = 20000
EVENTS = (None, "close", "open")


class DrawingError(ValueError):
    """A POSTed drawing that cannot become a sketch; its message goes back to the page."""


@dataclass
class DrawSession:
    """What one drawing needs: the image shown, the camera it came from, where the result goes."""
    image: np.ndarray                       # HxWx3 uint8 RGB, the front camera after reset
    k: np.ndarray
    base_T_camera: np.ndarray
    out: Path                               # FILE.png; FILE.json beside it
    style: SketchStyle = field(default_factory=SketchStyle)
    default_height: float = 0.05            # m above the base: just above a block's top on the table
    workspace: tuple = None                 # (low, high) the waypoint path must stay in; None: eval's SafetyLimits
    result: dict | None = None              # set once a drawing is saved
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def json_path(self) -> Path:
        return self.out.with_suffix(".json")


def twin_session(robot: str, task: str, seed: int, out: Path, image_size: int = 128, mode: str = "2.5d") -> DrawSession:
    """Reset the twin to the seed; its front image and front camera calibration at the policy camera's size."""
    from robot_stack.sim.camera import calibration
    from robot_stack.sim.env import make_env

    env = make_env(task, robot=robot, cameras=(CAMERA,), image_size=image_size)
    try:
        obs, _ = env.reset(seed=seed)
        cal = calibration(env.scene, [CAMERA], image_size, image_size)[CAMERA]
        image = np.ascontiguousarray(obs[CAMERA])
    finally:
        env.close()
    return DrawSession(image=image, k=np.array(cal["k"]), base_T_camera=np.array(cal["base_T_camera"]),
                       out=Path(out), style=SketchStyle(mode=mode))


def pixels_to_base(uv: np.ndarray, heights: np.ndarray, k: np.ndarray, base_T_camera: np.ndarray) -> np.ndarray:
    """Base-frame points where the camera rays through pixels `uv` (N, 2) meet the planes z = `heights` (N,).

    The inverse of project_points for a known height: a point found here projects back onto its pixel, so
    the sketch drawn from the 3D points passes exactly where the person drew."""
    uv = np.atleast_2d(np.asarray(uv, dtype=float))
    heights = np.asarray(heights, dtype=float).reshape(-1)
    rays_cam = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(np.asarray(k, dtype=float)).T
    rot, origin = np.asarray(base_T_camera)[:3, :3], np.asarray(base_T_camera)[:3, 3]
    rays = rays_cam @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (heights - origin[2]) / rays[:, 2]
    bad = ~np.isfinite(s) | (s <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DrawingError(f"point {i}: the camera ray through pixel ({uv[i, 0]:.1f}, {uv[i, 1]:.1f}) never meets "
                           f"the plane at height {heights[i]:.3f} m (it points above the horizon or the plane is "
                           "behind the camera)")
    return origin + s[:, None] * rays


def _number(value, what: str) -> float:
    # bool is an int in Python; a true/false coordinate is a client bug, not a pixel
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DrawingError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise DrawingError(f"{what} must be finite, got {value!r}")
    return value


def _reject_constant(name: str):
    # json.loads accepts NaN and Infinity by default; a non-finite coordinate has no place on an image
    raise DrawingError(f"non-finite number {name} in the drawing")


def parse_drawing(body: bytes, height: int, width: int) -> list[dict]:
    """The POSTed drawing -> points in drawing order, each {"u", "v", "height", "event"} (pixel coordinates of the
    policy-sized image, pixel centres at integers as in K). Raises DrawingError naming the first problem."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise DrawingError(f"the body is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DrawingError(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("strokes"), list):
        raise DrawingError('expected {"strokes": [[{"u": .., "v": .., "height": .., "event": null|"close"|"open"}, '
                           '...], ...]}')
    strokes = data["strokes"]
    if not strokes:
        raise DrawingError("nothing drawn: draw at least one stroke")
    points = []
    for s, stroke in enumerate(strokes):
        if not isinstance(stroke, list) or not stroke:
            raise DrawingError(f"stroke {s} is empty or not a list of points")
        for i, p in enumerate(stroke):
            where = f"stroke {s} point {i}"
            if not isinstance(p, dict):
                raise DrawingError(f"{where}: expected an object with u, v, height, got {p!r}")
            u, v = _number(p.get("u"), f"{where} u"), _number(p.get("v"), f"{where} v")
            h = _number(p.get("height"), f"{where} height")
            if not (-0.5 <= u <= width - 0.5 and -0.5 <= v <= height - 0.5):
                raise DrawingError(f"{where}: pixel ({u:.1f}, {v:.1f}) is outside the {width}x{height} image")
            event = p.get("event")
            if event not in EVENTS:
                raise DrawingError(f"{where}: event must be null, 'close' or 'open', got {event!r}")
            points.append({"u": u, "v": v, "height": h, "event": event})
            if len(points) > MAX_POINTS:
                raise DrawingError(f"more than {MAX_POINTS} points; draw fewer or shorter strokes")
    if len(points) < 2:
        raise DrawingError("a sketch needs at least two points: draw a stroke, not a single click")
    return points


def gripper_commands(points: list[dict]) -> list[float]:
    """The commanded gripper (0 open, 1 closed) at each point: the gripper starts open and each marker switches
    it from its point on. A marker that does not switch it (a second close) would draw nothing, so it is refused."""
    state, out = 0.0, []
    for i, p in enumerate(points):
        if p["event"] == "close":
            if state == 1.0:
                raise DrawingError(f"point {i}: a close marker while the gripper is already closed "
                                   "(place an open marker between two closes)")
            state = 1.0
        elif p["event"] == "open":
            if state == 0.0:
                raise DrawingError(f"point {i}: an open marker while the gripper is open (it starts open; "
                                   "place a close marker before it)")
            state = 0.0
        out.append(state)
    return out


def drawing_waypoints(points: list[dict], k, base_T_camera) -> list[dict]:
    """Pixel points -> base-frame waypoints [{"position": [x, y, z], "gripper": g}, ...]."""
    gripper = gripper_commands(points)
    xyz = pixels_to_base(np.array([[p["u"], p["v"]] for p in points]), np.array([p["height"] for p in points]),
                         k, base_T_camera)
    waypoints = [{"position": [float(c) for c in x], "gripper": g} for x, g in zip(xyz, gripper)]
    if gripper[0] == 1.0:
        # a close on the very first point: start there open, so the transition (and its marker) exists
        waypoints.insert(0, {"position": list(waypoints[0]["position"]), "gripper": 0.0})
    return waypoints


def render_waypoints(waypoints: list[dict], session: DrawSession) -> np.ndarray:
    """The sketch of the waypoints exactly as `eval --sketch-waypoints` draws it: same densifying, same checks."""
    points, gripper = waypoint_path(waypoints)
    if session.workspace is None:
        from robot_stack.control.safety import SafetyLimits
        limits = SafetyLimits()
        low, high = limits.workspace_low, limits.workspace_high
    else:
        low, high = session.workspace
    check_in_workspace(points, low, high)
    h, w = session.size
    return draw_sketch(points, gripper, session.k, session.base_T_camera, h, w, session.style)


def encode_png(image_rgb: np.ndarray) -> bytes:
    import cv2
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image_rgb[:, :, ::-1]))     # OpenCV writes BGR
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    # a file an eval may already be reading must never be seen half written
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_drawing(body: bytes, session: DrawSession) -> dict:
    """Validate, convert, draw and write FILE.png and FILE.json; the summary the page shows."""
    h, w = session.size
    points = parse_drawing(body, h, w)
    waypoints = drawing_waypoints(points, session.k, session.base_T_camera)
    try:
        sketch = render_waypoints(waypoints, session)
    except SketchError as exc:
        raise DrawingError(str(exc)) from exc
    png = encode_png(sketch)
    with session.lock:              # two quick "Done" clicks: one writes, and both see the same result
        if session.result is not None:
            return session.result
        _write_atomic(session.out, png)
        text = "[\n" + ",\n".join(json.dumps(w) for w in waypoints) + "\n]\n"     # one waypoint a line
        _write_atomic(session.json_path(), text.encode())
        session.result = {"png": str(session.out), "json": str(session.json_path()), "waypoints": len(waypoints),
                          "sketch": sketch}
    return session.result


# The page: no external scripts or styles (it works offline and loads nothing from elsewhere). CONFIG is
# filled in per session. Pointer events carry mouse, pen and touch alike; points are kept in image pixel
# coordinates (pixel centres at integers, as K has them), so the server needs no knowledge of the zoom.
PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>robot-stack sketch draw</title>
<style>
 body { font-family: sans-serif; margin: 12px; background: #222; color: #eee; }
 #wrap { display: flex; gap: 16px; align-items: flex-start; }
 canvas { cursor: crosshair; touch-action: none; border: 1px solid #666; }
 .controls { display: flex; flex-direction: column; gap: 8px; min-width: 260px; }
 button { font-size: 15px; padding: 6px 10px; }
 button.on { background: #4a8; color: #000; }
 #status { white-space: pre-wrap; min-height: 3em; }
 #status.error { color: #f77; }
 #preview { image-rendering: pixelated; border: 1px solid #666; }
 #preview:not([src]) { display: none; }
</style></head>
<body>
<h3 id="title"></h3>
<div id="wrap">
 <canvas id="canvas"></canvas>
 <div class="controls">
  <div>Mode:
   <button id="mode-draw" class="on">draw</button>
   <button id="mode-close">close</button>
   <button id="mode-open">open</button>
  </div>
  <label id="height-label">height (m) of the next points</label>
  <input id="height" type="range">
  <input id="height-number" type="number">
  <div>
   <button id="undo">undo stroke</button>
   <button id="clear">clear</button>
   <button id="done">Done</button>
  </div>
  <div id="status">Draw the path with the mouse; the drawing order is the time order.</div>
  <img id="preview" alt="">
 </div>
</div>
<script>
"use strict";
const CONFIG = __CONFIG__;
const W = CONFIG.width, H = CONFIG.height, Z = CONFIG.zoom;
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
canvas.width = W * Z; canvas.height = H * Z;
document.getElementById("title").textContent = CONFIG.title;
const heightSlider = document.getElementById("height"), heightNumber = document.getElementById("height-number");
for (const el of [heightSlider, heightNumber]) {
  el.min = CONFIG.h_min; el.max = CONFIG.h_max; el.step = 0.005; el.value = CONFIG.default_height;
}
if (CONFIG.mode === "2d")
  document.getElementById("height-label").textContent =
    "height (m) of the next points (a 2D sketch does not show it; the waypoint file keeps it)";
let height = CONFIG.default_height;
function setHeight(value) {
  const h = Number(value);
  if (!Number.isFinite(h)) return;
  height = h; heightSlider.value = h; heightNumber.value = h;
}
heightSlider.addEventListener("input", e => setHeight(e.target.value));
heightNumber.addEventListener("input", e => setHeight(e.target.value));

const image = new Image();
image.onload = redraw;
image.src = "/image.png";

let mode = "draw";
let strokes = [];          // [[{u, v, height, event}]] in drawing order
let current = null;
for (const m of ["draw", "close", "open"]) {
  document.getElementById("mode-" + m).addEventListener("click", () => {
    mode = m;
    for (const n of ["draw", "close", "open"]) document.getElementById("mode-" + n).classList.toggle("on", n === m);
    status(m === "draw" ? "Draw strokes." : "Click on the stroke where the gripper should " + m + ".");
  });
}
function status(text, error) {
  const el = document.getElementById("status");
  el.textContent = text; el.className = error ? "error" : "";
}
function toImage(e) {
  // display pixel -> image pixel with pixel centres at integers (as the camera's K has them); the
  // bounding box includes the border, the drawing area starts at clientLeft/clientTop inside it
  const r = canvas.getBoundingClientRect();
  const x = e.clientX - r.left - canvas.clientLeft, y = e.clientY - r.top - canvas.clientTop;
  return {u: x * W / canvas.clientWidth - 0.5, v: y * H / canvas.clientHeight - 0.5};
}
function allPoints() { return strokes.flat(); }
function redraw() {
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (image.complete) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  const pts = allPoints(), n = pts.length;
  ctx.lineWidth = 3; ctx.lineCap = "round";
  for (let i = 1; i < n; i++) {        // time-graded red as in the sketch; green shows height in 2.5D
    const g = CONFIG.mode === "2d" ? 0 :
      Math.max(0, Math.min(1, (pts[i].height - CONFIG.h_min) / (CONFIG.h_max - CONFIG.h_min)));
    ctx.strokeStyle = `rgb(${Math.round(255 * (i + 1) / n)}, ${Math.round(255 * g)}, 0)`;
    ctx.beginPath();
    ctx.moveTo((pts[i - 1].u + 0.5) * Z, (pts[i - 1].v + 0.5) * Z);
    ctx.lineTo((pts[i].u + 0.5) * Z, (pts[i].v + 0.5) * Z);
    ctx.stroke();
  }
  for (const p of pts) {
    if (!p.event) continue;
    ctx.fillStyle = p.event === "close" ? "rgb(0,255,0)" : "rgb(0,0,255)";
    ctx.beginPath(); ctx.arc((p.u + 0.5) * Z, (p.v + 0.5) * Z, 2 * Z, 0, 2 * Math.PI); ctx.fill();
  }
}
function nearest(q) {
  let best = null, bestD = Infinity;
  for (const p of allPoints()) {
    const d = Math.hypot(p.u - q.u, p.v - q.v);
    if (d < bestD) { bestD = d; best = p; }
  }
  return bestD * Z <= 20 ? best : null;     // within 20 screen pixels of the stroke
}
canvas.addEventListener("pointerdown", e => {
  e.preventDefault();
  const q = toImage(e);
  if (mode === "draw") {
    canvas.setPointerCapture(e.pointerId);
    current = [{u: q.u, v: q.v, height: height, event: null}];
    strokes.push(current);
  } else {
    const p = nearest(q);
    if (!p) { status("Click on the stroke to place a " + mode + " marker.", true); return; }
    p.event = p.event === mode ? null : mode;          // clicking a marker again removes it
    status((p.event ? mode + " marker placed" : "marker removed") + ".");
  }
  redraw();
});
canvas.addEventListener("pointermove", e => {
  if (!current) return;
  const q = toImage(e), last = current[current.length - 1];
  if (Math.hypot(q.u - last.u, q.v - last.v) < 0.5) return;     // half an image pixel: enough detail
  q.u = Math.max(-0.5, Math.min(W - 0.5, q.u)); q.v = Math.max(-0.5, Math.min(H - 0.5, q.v));
  current.push({u: q.u, v: q.v, height: height, event: null});
  redraw();
});
function endStroke() { current = null; }
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
document.getElementById("undo").addEventListener("click", () => { strokes.pop(); redraw(); });
document.getElementById("clear").addEventListener("click", () => { strokes = []; redraw(); });
document.getElementById("done").addEventListener("click", async () => {
  status("saving ...");
  try {
    const r = await fetch("/done", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify({strokes: strokes})});
    const reply = await r.json();
    if (!r.ok) { status("Not saved: " + reply.error, true); return; }
    status("Saved " + reply.png + " and " + reply.json + ". You can close this page.");
    const preview = document.getElementById("preview");
    preview.src = reply.preview; preview.width = W * 2; preview.height = H * 2;
    document.body.dataset.saved = "1";
  } catch (err) {
    status("Not saved: " + err, true);
  }
});
</script>
</body></html>
"""


def page_html(session: DrawSession, title: str = "") -> str:
    h, w = session.size
    config = {"width": w, "height": h, "zoom": max(1, round(512 / max(h, w))), "mode": session.style.mode,
              "h_min": session.style.h_min, "h_max": session.style.h_max, "default_height": session.default_height,
              "title": title}
    # "</" escaped so no value can close the script element
    return PAGE.replace("__CONFIG__", json.dumps(config).replace("</", "<\\/"))


def make_server(session: DrawSession, port: int = 0, title: str = "") -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:port (0: any free port) serving the page and accepting the drawing."""
    page = page_html(session, title).encode()
    image_png = encode_png(session.image)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):        # the terminal shows the URL and the outcome, not every request
            pass

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: dict) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self):
            route = self.path.split("?", 1)[0]
            if route in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
            elif route == "/image.png":
                self._send(200, image_png, "image/png")
            else:
                self._json(404, {"error": f"no page {route}"})

        def do_POST(self):
            if self.path.split("?", 1)[0] != "/done":
                return self._json(404, {"error": f"POST to /done, not {self.path}"})
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._json(411, {"error": "a Content-Length header is required"})
            if length < 0 or length > MAX_BODY:
                self.close_connection = True          # the unread body must not be parsed as the next request
                return self._json(413, {"error": f"the drawing is {length} bytes; at most {MAX_BODY}"})
            body = self.rfile.read(length)
            try:
                result = save_drawing(body, session)
            except DrawingError as exc:
                return self._json(400, {"error": str(exc)})
            except Exception as exc:      # an unforeseen failure answers the page and leaves the server up
                return self._json(500, {"error": f"{type(exc).__name__}: {exc}"})
            import base64
            preview = "data:image/png;base64," + base64.b64encode(encode_png(result["sketch"])).decode()
            try:
                self._json(200, {"png": result["png"], "json": result["json"], "waypoints": result["waypoints"],
                                 "preview": preview})
            finally:
                session.done.set()      # after the reply is sent: the command may shut the server down now

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def publish_sketch(sketch: np.ndarray, wait: float = 5.0) -> int:
    """Publish the sketch latched on /task/sketch for a running policy server; the subscribers reached.

    Only the sketch topic is published (not task_publishers' every-kind set, whose clearing messages would
    wipe the other task inputs a running server holds). The message is latched but lives only as long as
    this process, so it waits for a subscriber and for its acknowledgement before returning."""
    import time

    import rclpy
    from rclpy.duration import Duration
    from sensor_msgs.msg import Image

    from robot_stack.policies.conditioning.base import image_msg_or_clear
    from robot_stack.ros import qos

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("sketch_draw", context=context)
        pub = node.create_publisher(Image, "/task/sketch", qos.LATCHED)
        deadline = time.monotonic() + wait
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        stamp = node.get_clock().now().nanoseconds * 1e-9
        pub.publish(image_msg_or_clear(sketch, stamp, f"{CAMERA}_color_optical_frame"))
        count = pub.get_subscription_count()
        if count:
            pub.wait_for_all_acked(Duration(seconds=wait))
        node.destroy_node()
        return count
    finally:
        rclpy.shutdown(context=context)


def run(args) -> int:
    """The CLI command: render, serve, wait for the drawing, write it (and publish it)."""
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    if args.image_size < 16:
        raise ValueError(f"--image-size must be at least 16, got {args.image_size}")
    session = twin_session(args.robot, args.task, args.seed, out, args.image_size, args.mode)
    title = f"{args.robot} {args.task} seed {args.seed}: {args.mode} sketch -> {out}"
    server = make_server(session, args.port, title)
    thread = threading.Thread(target=server.serve_forever, name="sketch_draw_http", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"sketch draw: open {url} in a browser, draw, then press Done (Ctrl-C to quit)", flush=True)
    try:
        session.done.wait()
    finally:
        server.shutdown()
        server.server_close()
    result = session.result
    print(f"sketch draw: wrote {result['png']} and {result['json']} ({result['waypoints']} waypoints)", flush=True)
    if args.publish:
        reached = publish_sketch(result["sketch"])
        if reached:
            print(f"sketch draw: published on /task/sketch to {reached} subscriber(s)", flush=True)
        else:
            print("sketch draw: no subscriber on /task/sketch within 5 s (is the policy server running?); "
                  "the files are saved", file=sys.stderr, flush=True)
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="FILE.png",
                        help="the sketch (RGB PNG at the policy camera's size); FILE.json gets the 3D waypoints")
    parser.add_argument("--image-size", type=int, default=128, help="the policy camera's image size")
    parser.add_argument("--mode", default="2.5d", choices=["2d", "2.5d"], help="2.5d also draws height in green")
    parser.add_argument("--publish", action="store_true", help="also publish the sketch on /task/sketch (latched)")
    parser.add_argument("--port", type=int, default=0, help="local port of the drawing page (0: any free port)")
