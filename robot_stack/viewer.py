"""`robot-stack data view STORE --episode N [--save FILE.rrd]`: one episode of an episode store in rerun.

What the recording holds (entity paths; `ENTITIES` lists the ones every episode with poses gets):

    world                          base frame, z up
    world/tcp_path/measured        the whole measured TCP path (ee_pose), a static line
    world/tcp_path/commanded       the whole commanded path (action_pose), a static line
    world/tcp_path/gripper         the measured path's points coloured by the gripper: red closed, green open
    world/tcp/measured             the measured TCP pose over time (axes), a point coloured by the gripper
    world/tcp/commanded            the commanded TCP pose over time (axes)
    world/cameras/<cam>            a calibrated fixed camera (metadata `cameras`): pose, pinhole, its frames
    world/tcp/measured/<cam>       a calibrated hand camera (it has `tcp_T_camera`): rides on the measured TCP
    cameras/<stream>               frames of an image stream without calibration
    plots/position/{x,y,z}/{measured,commanded}   metres
    plots/tracking_error/{position_mm,rotation_deg}   commanded (latest at or before) minus measured
    plots/gripper/{width,command}  measured width (m), commanded closure in [0, 1]
    plots/wrench/force_n           |force| when the episode has a `wrench` stream
    episode/contact_phase          metadata `contact_phase` as a state lane
    episode/gripper_state          open/closed from the command (or the width when no command was recorded)
    episode/outcome                `success` at the episode's last stamp, and the summary text
    episode/summary                task, instruction, robot, operator, seed, success (markdown, static)

Every sample sits on two timelines: `time` (seconds since the episode's first stamp, so sim episodes
that start at 0 and recorded ones read alike) and, when the stamps are wall-clock (after 1973),
`stamp` (the capture stamp itself, to line the episode up with logs and bags).

rerun (`rerun-sdk`, ~170 MB with its viewer) is an optional extra: `pip install 'robot_stack[viewer]'`.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np

from robot_stack.data.align import align_to_clock
from robot_stack.data.store import EpisodeStore

INSTALL_HINT = "pip install 'robot_stack[viewer]'"
ENTITIES = ("world/tcp_path/measured", "world/tcp_path/commanded", "world/tcp_path/gripper", "world/tcp/measured",
            "world/tcp/commanded", "plots/tracking_error/position_mm", "plots/tracking_error/rotation_deg",
            "episode/summary", "episode/outcome")
PHASE_COLORS = {"pre_contact": (120, 160, 255), "in_contact": (255, 150, 40), "post_contact": (90, 200, 120)}
OPEN, CLOSED = (60, 200, 90), (230, 60, 60)
ABSOLUTE_AFTER_S = 1e8          # stamps past 1973 are wall-clock; smaller ones are episode/sim time
CLOSED_COMMAND = 0.5            # the gripper command's threshold, as rollout.gripper_events reads it


class ViewerUnavailable(ValueError):
    """rerun is not installed. A ValueError so that the CLI prints it as one line (exit 2)."""


def import_rerun():
    try:
        import rerun as rr
        import rerun.blueprint  # noqa: F401  (the default layout)
    except ImportError as exc:
        raise ViewerUnavailable(f"the episode viewer needs rerun-sdk, which is not installed: {INSTALL_HINT} "
                                f"({exc})") from exc
    return rr


def _rerun_executable() -> str | None:
    """The `rerun` viewer next to this interpreter (a venv's bin/ need not be on PATH), else PATH's."""
    here = Path(sys.executable).parent / "rerun"
    return str(here) if here.exists() else shutil.which("rerun")


def _check_port_free(port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as the servers bind: TIME_WAIT is no conflict
        try:
            s.bind(("0.0.0.0", port))
        except OSError as exc:
            raise ValueError(f"port {port} is taken ({exc.strerror}; another viewer?): pass another {flag}") from exc


class _Clock:
    """Time columns of one stream on both timelines."""

    def __init__(self, rr, t0: float, absolute: bool):
        self.rr, self.t0, self.absolute = rr, t0, absolute

    def columns(self, stamps: np.ndarray) -> list:
        stamps = np.asarray(stamps, np.float64)
        cols = [self.rr.TimeColumn("time", duration=stamps - self.t0)]
        if self.absolute:
            cols.append(self.rr.TimeColumn("stamp", timestamp=stamps))
        return cols

    def set(self, rec, stamp: float) -> None:
        rec.set_time("time", duration=float(stamp) - self.t0)
        if self.absolute:
            rec.set_time("stamp", timestamp=float(stamp))


def _rotation_deg(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Angle between xyzw quaternions row by row; |dot| because q and -q are one rotation."""
    dot = np.abs(np.sum(qa * qb, axis=1)) / (np.linalg.norm(qa, axis=1) * np.linalg.norm(qb, axis=1))
    return np.degrees(2.0 * np.arccos(np.clip(dot, 0.0, 1.0)))


def _changes(stamps: np.ndarray, states: list[str]) -> tuple[np.ndarray, list[str]]:
    """Only the rows where the state differs from the row before: a state lane needs its transitions."""
    keep = [i for i in range(len(states)) if i == 0 or states[i] != states[i - 1]]
    return np.asarray(stamps)[keep], [states[i] for i in keep]


def _image_streams(store: EpisodeStore) -> tuple[list[str], list[str]]:
    """Colour streams (uint8 HxWx3) and depth streams (HxW), as the recorder and the twin name them."""
    colour, depth = [], []
    for name, spec in store.streams.items():
        if len(spec.shape) == 3 and spec.shape[2] == 3 and np.dtype(spec.dtype) == np.uint8:
            colour.append(name)
        elif len(spec.shape) == 2 and min(spec.shape) >= 8:
            depth.append(name)
    return colour, depth


def _camera_entity(stream: str, calibration: dict) -> tuple[str, dict | None]:
    """Where a camera's frames go: under its calibrated pose when the metadata has one (stream `front_rgb`
    is camera `front`), else a plain 2D entity."""
    for cam, entry in calibration.items():
        if stream in (cam, f"{cam}_rgb", f"{cam}_depth"):
            parent = "world/tcp/measured" if "tcp_T_camera" in entry else "world/cameras"
            return f"{parent}/{cam}", entry
    return f"cameras/{stream}", None


def _summary(meta: dict, k: int) -> str:
    lines = [f"# Episode {k}"]
    for key in ("task", "instruction", "robot", "operator", "seed", "success", "steps"):
        if key in meta:
            lines.append(f"- **{key}**: {meta[key]}")
    phases = meta.get("contact_phase")
    if isinstance(phases, list) and phases:
        counts = {p: phases.count(p) for p in dict.fromkeys(phases)}
        lines.append(f"- **contact phases** (steps): {json.dumps(counts)}")
    return "\n".join(lines)


def log_episode(rec, store_path: str | Path, k: int, lossless: bool = False, jpeg_quality: int = 90) -> dict:
    """Log episode `k` of the store into the recording stream `rec`; returns what was logged.

    Images go in as JPEG (OpenCV) unless `lossless`: a 640x480 camera at 30 Hz is 1.6 GB a minute raw,
    and the viewer is for looking, not for training (the store keeps the exact frames)."""
    rr = import_rerun()
    with EpisodeStore.open(store_path) as store:
        return _log_episode(rr, rec, store, store_path, k, lossless, jpeg_quality)


def _log_episode(rr, rec, store: EpisodeStore, store_path, k: int, lossless: bool, jpeg_quality: int) -> dict:
    n = store.num_episodes
    if not -n <= k < n:
        raise ValueError(f"{store_path}: no episode {k} (the store has {n})")
    k %= n
    meta = store.metadata(k)
    colour, depth = _image_streams(store)
    wanted = [s for s in ("ee_pose", "action_pose", "gripper", "action_gripper", "wrench", "tick")
              if s in store.streams]
    ep = store.read_episode(k, wanted)
    spans = [store.read_stream(k, s, parts=("capture_stamp",))["capture_stamp"] for s in store.streams]
    spans = [(float(s[0]), float(s[-1])) for s in spans if len(s)]
    if not spans:
        raise ValueError(f"{store_path}: episode {k} has no samples")
    t0, t_end = min(a for a, _ in spans), max(b for _, b in spans)
    clock = _Clock(rr, t0, t0 > ABSOLUTE_AFTER_S)
    logged: dict = {"episode": k, "entities": [], "t0": t0, "timelines": ["time"] + (["stamp"] if clock.absolute else [])}

    def send(path: str, stamps, columns) -> None:
        rec.send_columns(path, indexes=clock.columns(stamps), columns=columns)
        logged["entities"].append(path)

    def static(path: str, *archetypes) -> None:
        for a in archetypes:
            rec.log(path, a, static=True)
        logged["entities"].append(path)

    static("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP)
    static("episode/summary", rr.TextDocument(_summary(meta, k), media_type=rr.MediaType.MARKDOWN))

    # --- gripper: the command says open/closed exactly; the width only says how far the fingers are apart
    closed_at = None                       # (stamps, bool per stamp) of the gripper state
    if "action_gripper" in ep and len(ep["action_gripper"]["data"]):
        g = ep["action_gripper"]
        cmd = np.asarray(g["data"], np.float64).reshape(len(g["data"]), -1)[:, 0]
        send("plots/gripper/command", g["capture_stamp"], rr.Scalars.columns(scalars=cmd))
        closed_at = (g["capture_stamp"], cmd > CLOSED_COMMAND)
    if "gripper" in ep and len(ep["gripper"]["data"]):
        g = ep["gripper"]
        width = np.asarray(g["data"], np.float64).reshape(len(g["data"]), -1)[:, 0]
        send("plots/gripper/width", g["capture_stamp"], rr.Scalars.columns(scalars=width))
        if closed_at is None and width.max() > 0:
            closed_at = (g["capture_stamp"], width < 0.5 * width.max())
    if closed_at is not None:
        stamps, states = _changes(closed_at[0], ["closed" if c else "open" for c in closed_at[1]])
        static("episode/gripper_state", rr.StateConfiguration(values=["open", "closed"], colors=[OPEN, CLOSED]))
        send("episode/gripper_state", stamps, rr.StateChange.columns(state=states))

    # --- poses: the path in 3D, the moving frames, per-axis plots and the tracking error
    poses = {name: ep[name] for name in ("ee_pose", "action_pose") if name in ep and len(ep[name]["data"])}
    for name, label, colour_rgb in (("ee_pose", "measured", (40, 120, 255)), ("action_pose", "commanded", (255, 170, 0))):
        if name not in poses:
            continue
        data = np.asarray(poses[name]["data"], np.float64)
        stamps = poses[name]["capture_stamp"]
        static(f"world/tcp_path/{label}", rr.LineStrips3D([data[:, :3]], colors=[colour_rgb], radii=[0.002]))
        static(f"world/tcp/{label}", rr.TransformAxes3D(0.06 if label == "measured" else 0.035))
        send(f"world/tcp/{label}", stamps, rr.Transform3D.columns(translation=data[:, :3], quaternion=data[:, 3:7]))
        for i, axis in enumerate("xyz"):
            send(f"plots/position/{axis}/{label}", stamps, rr.Scalars.columns(scalars=data[:, i]))
    if "ee_pose" in poses and closed_at is not None:
        ee = poses["ee_pose"]
        closed = closed_at[1][align_to_clock(ee["capture_stamp"], closed_at[0])]
        colours = np.where(closed[:, None], CLOSED, OPEN).astype(np.uint8)
        static("world/tcp_path/gripper", rr.Points3D(np.asarray(ee["data"])[:, :3], colors=colours, radii=[0.004]))
        # the marker at the TCP itself: its colour over time is the gripper state at that moment
        send("world/tcp/measured", ee["capture_stamp"],
             rr.Points3D.columns(positions=np.zeros((len(closed), 3)), colors=colours, radii=np.full(len(closed), 0.012)))
    elif "ee_pose" in poses:
        static("world/tcp_path/gripper", rr.Points3D(np.asarray(poses["ee_pose"]["data"])[:, :3], radii=[0.004]))
    if len(poses) == 2:
        ee, cmd = poses["ee_pose"], poses["action_pose"]
        # the command in force at each measurement: the latest at or before it, never a later one
        rows = align_to_clock(ee["capture_stamp"], cmd["capture_stamp"])
        valid = cmd["capture_stamp"][rows] <= ee["capture_stamp"]
        if valid.any():
            e, c = np.asarray(ee["data"], np.float64)[valid], np.asarray(cmd["data"], np.float64)[rows[valid]]
            stamps = ee["capture_stamp"][valid]
            send("plots/tracking_error/position_mm", stamps,
                 rr.Scalars.columns(scalars=1000.0 * np.linalg.norm(c[:, :3] - e[:, :3], axis=1)))
            send("plots/tracking_error/rotation_deg", stamps, rr.Scalars.columns(scalars=_rotation_deg(c[:, 3:7], e[:, 3:7])))
            logged["max_position_error_mm"] = float(1000.0 * np.linalg.norm(c[:, :3] - e[:, :3], axis=1).max())

    if "wrench" in ep and len(ep["wrench"]["data"]):
        w = np.asarray(ep["wrench"]["data"], np.float64)
        send("plots/wrench/force_n", ep["wrench"]["capture_stamp"],
             rr.Scalars.columns(scalars=np.linalg.norm(w[:, :3], axis=1)))

    # --- contact phases: one per policy step, the phase reached after that step's action (rollout.py), so
    # phase i sits at the stamp of the observation after action i: row i+1 of the step-rate stream
    phases = meta.get("contact_phase")
    if isinstance(phases, list) and phases:
        ref = next((ep[s]["capture_stamp"] for s in ("tick", "action_pose", "ee_pose") if s in ep and len(ep[s]["data"])),
                   None)
        if ref is not None:
            offset = 1 if len(ref) > len(phases) else 0
            m = min(len(phases), len(ref) - offset)
            stamps, states = _changes(ref[offset:offset + m], [str(p) for p in phases[:m]])
            names = list(dict.fromkeys(str(p) for p in phases))
            static("episode/contact_phase", rr.StateConfiguration(
                values=names, colors=[PHASE_COLORS.get(p, (180, 180, 180)) for p in names]))
            send("episode/contact_phase", stamps, rr.StateChange.columns(state=states))
            logged["contact_phases"] = states

    # --- outcome at the last stamp of the episode, so scrubbing to the end shows it
    success = meta.get("success")
    outcome = "success" if success is True else "failure" if success is False else "unknown"
    static("episode/outcome", rr.StateConfiguration(values=["success", "failure", "unknown"],
                                                    colors=[OPEN, CLOSED, (160, 160, 160)]))
    send("episode/outcome", [t_end], rr.StateChange.columns(state=[outcome]))
    logged["success"] = success

    # --- cameras: calibrated ones in the 3D scene (pinhole at their pose), the rest as 2D images
    import cv2
    calibration = meta.get("cameras") if isinstance(meta.get("cameras"), dict) else {}
    for stream in colour + depth:
        path, entry = _camera_entity(stream, calibration)
        if entry is not None and path not in logged["entities"]:
            pose = np.asarray(entry.get("tcp_T_camera", entry.get("base_T_camera")), np.float64)
            static(path, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]),
                   rr.Pinhole(image_from_camera=np.asarray(entry["k"]), width=entry["width"], height=entry["height"],
                              image_plane_distance=0.08))
        frames = store.read_stream(k, stream, parts=("data", "capture_stamp"))
        for img, stamp in zip(frames["data"], frames["capture_stamp"]):
            clock.set(rec, stamp)
            if stream in depth:
                # uint16 depth is millimetres (RealSense's z16 at its default depth unit), float depth metres
                rec.log(path, rr.DepthImage(img, meter=1000.0 if img.dtype == np.uint16 else 1.0))
            elif lossless:
                rec.log(path, rr.Image(img))
            else:
                ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]),
                                        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                if not ok:
                    raise ValueError(f"{store_path}: episode {k}: could not encode a {stream} frame")
                rec.log(path, rr.EncodedImage(contents=jpeg.tobytes(), media_type="image/jpeg"))
        logged["entities"].append(path)
        logged.setdefault("cameras", {})[stream] = {"entity": path, "frames": len(frames["capture_stamp"])}
    logged["entities"] = list(dict.fromkeys(logged["entities"]))
    return logged


def blueprint(rr, logged: dict):
    """The default layout: 3D scene and camera views on top, plots and state lanes below."""
    import rerun.blueprint as rrb
    cams = [rrb.Spatial2DView(origin=c["entity"], name=s) for s, c in logged.get("cameras", {}).items()]
    top = rrb.Horizontal(rrb.Spatial3DView(origin="world", name="TCP path"), *( [rrb.Vertical(*cams)] if cams else []))
    plots = rrb.Horizontal(
        rrb.TimeSeriesView(origin="plots/position", name="position (m)"),
        rrb.TimeSeriesView(origin="plots/tracking_error", name="commanded - measured"),
        rrb.TimeSeriesView(origin="plots/gripper", name="gripper"))
    lanes = rrb.Horizontal(rrb.StateTimelineView(origin="episode", name="phases, gripper, outcome"),
                           rrb.TextDocumentView(origin="episode/summary", name="episode"))
    return rrb.Blueprint(rrb.Vertical(top, plots, lanes, row_shares=[3, 2, 1]), collapse_panels=True)


def view(store_path: str | Path, k: int = 0, save: str | Path | None = None, serve: bool = False,
         web_port: int = 9090, grpc_port: int = 9876, lossless: bool = False, jpeg_quality: int = 90,
         open_browser: bool = True, serve_seconds: float | None = None) -> dict:
    """Episode `k` to a .rrd file (`save`), a spawned native viewer, or a served web viewer.

    Without `save`: spawn the native viewer where there is a display, else (or with `serve`) serve the
    web viewer and its data until Ctrl-C (`serve_seconds`: stop after that long, for tests)."""
    rr = import_rerun()
    store_path = Path(store_path)
    rec = rr.RecordingStream("robot_stack", recording_id=f"{store_path.name}:episode{k}")
    rec.send_recording_name(f"{store_path.name} episode {k}")
    # frames carry the episode's stamps; a `log_time` (when this command ran) would only be a confusing third timeline
    rr.set_log_time_enabled(False, recording=rec)
    mode = "save" if save else "serve" if serve or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
        else "spawn"
    if mode == "save":
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        rec.save(save)
    elif mode == "spawn":
        exe = _rerun_executable()
        if exe is None:
            raise ViewerUnavailable(f"the rerun viewer executable is missing: {INSTALL_HINT}, or use --save FILE.rrd")
        rr.spawn(recording=rec, executable_path=exe, port=grpc_port)
    else:
        # rerun only logs a taken gRPC port and raises a bare RuntimeError for a taken web port: say which flag helps
        for port, flag in ((grpc_port, "--grpc-port"), (web_port, "--web-port")):
            _check_port_free(port, flag)
        uri = rec.serve_grpc(grpc_port=grpc_port)
        rr.serve_web_viewer(web_port=web_port, open_browser=open_browser, connect_to=uri)
    logged = log_episode(rec, store_path, k, lossless=lossless, jpeg_quality=jpeg_quality)
    # the layout goes last: it names the camera entities, known only once they are logged
    rec.send_blueprint(blueprint(rr, logged), make_active=True, make_default=True)
    rec.flush()
    result = {"store": str(store_path), "episode": logged["episode"], "mode": mode, "entities": logged["entities"],
              "timelines": logged["timelines"], "success": logged.get("success")}
    if mode == "save":
        rec.disconnect()                   # closes the file: footer written, readable by `rerun FILE.rrd`
        result["path"] = str(save)
    elif mode == "serve":
        result["url"] = f"http://localhost:{web_port}/?url={uri}"
        print(f"rerun web viewer: {result['url']}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        deadline = None if serve_seconds is None else time.monotonic() + serve_seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        rec.disconnect()
    return result
