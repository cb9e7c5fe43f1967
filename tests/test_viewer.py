"""`robot-stack data view`: an episode in rerun (issue 34, item 5).

The .rrd files are read back with rerun's own reader (`rerun.chunk.RrdReader`), and the served web
viewer's data with rerun's own CLI (`rerun download`), so what is checked is what a user's viewer loads.
The store is made here with known values (a path along x, commands 5 mm above and turned 10 degrees,
a gripper that closes at 0.4 s, three contact phases), so every plotted number has an expected value."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from robot_stack.cli import main
from robot_stack.data import EpisodeStore

rr = pytest.importorskip("rerun", reason="rerun-sdk comes with the test extra")
from rerun.chunk import RrdReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_750_000_000.0                  # wall-clock stamps, as the recorder writes them
N_STATE, N_CMD, N_FRONT, N_WRIST = 40, 8, 12, 6
PHASES = ["pre_contact"] * 3 + ["in_contact"] * 3 + ["post_contact"]
INSTRUCTION = "put the red block in the bowl"
K_FRONT = [[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]]
BASE_T_FRONT = [[0.0, -1.0, 0.0, 1.2], [-1.0, 0.0, 0.0, 0.1], [0.0, 0.0, -1.0, 0.9], [0.0, 0.0, 0.0, 1.0]]
TCP_T_WRIST = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.05], [0.0, 0.0, 1.0, 0.02], [0.0, 0.0, 0.0, 1.0]]
QUAT_10DEG_Z = [0.0, 0.0, np.sin(np.radians(5.0)), np.cos(np.radians(5.0))]
EXPECTED_ENTITIES = {
    "/world", "/world/tcp_path/measured", "/world/tcp_path/commanded", "/world/tcp_path/gripper",
    "/world/tcp/measured", "/world/tcp/commanded", "/world/cameras/front", "/world/tcp/measured/wrist",
    "/plots/position/x/measured", "/plots/position/z/commanded", "/plots/tracking_error/position_mm",
    "/plots/tracking_error/rotation_deg", "/plots/gripper/width", "/plots/gripper/command", "/plots/wrench/force_n",
    "/episode/contact_phase", "/episode/gripper_state", "/episode/outcome", "/episode/summary"}


def state_stamps():
    return T0 + 0.02 * np.arange(N_STATE)


def cmd_stamps():
    return T0 + 0.1 * np.arange(N_CMD) - 0.001     # just before every 5th state sample: that row sees it


def ee_positions():
    return np.stack([0.4 + 0.005 * np.arange(N_STATE), np.zeros(N_STATE), np.full(N_STATE, 0.3)], axis=1)


def frame(i: int, h=48, w=64) -> np.ndarray:
    """Smooth images (JPEG keeps them close) that differ from frame to frame."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 3 + 10 * i) % 256, (y * 4) % 256, np.full((h, w), 20 * i % 256)], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "demo.zarr"
    s = EpisodeStore.create(path, durable=False)
    with s.begin_episode(task="reach", instruction="touch the cube", seed=0) as ep:    # a decoy episode 0
        ep.append("ee_pose", np.array([0.5, 0, 0.2, 0, 0, 0, 1.0]), 5.0)
        ep.commit(success=False)
    ee = np.concatenate([ee_positions(), np.tile([0.0, 0.0, 0.0, 1.0], (N_STATE, 1))], axis=1)
    cmd_rows = 5 * np.arange(N_CMD)
    cmd = np.concatenate([ee_positions()[cmd_rows] + [0, 0, 0.005], np.tile(QUAT_10DEG_Z, (N_CMD, 1))], axis=1)
    with s.begin_episode(task="pick_place", instruction=INSTRUCTION, seed=7, robot="panda", operator="scripted",
                         contact_phase=PHASES, steps=len(PHASES),
                         cameras={"front": {"k": K_FRONT, "base_T_camera": BASE_T_FRONT, "height": 48, "width": 64},
                                  "wrist": {"k": K_FRONT, "base_T_camera": BASE_T_FRONT, "tcp_T_camera": TCP_T_WRIST,
                                            "height": 48, "width": 64}}) as ep:
        ep.append_many("ee_pose", ee, state_stamps())
        ep.append_many("gripper", np.where(np.arange(N_STATE) < 20, 0.08, 0.03)[:, None], state_stamps())
        ep.append_many("wrench", np.tile([3.0, 4.0, 0.0, 0, 0, 0], (N_STATE, 1)), state_stamps())
        ep.append_many("action_pose", cmd, cmd_stamps())
        ep.append_many("action_gripper", (np.arange(N_CMD) >= 4).astype(np.float64)[:, None], cmd_stamps())
        ep.append_many("front_rgb", np.stack([frame(i) for i in range(N_FRONT)]), T0 + np.arange(N_FRONT) / 15)
        ep.append_many("wrist_rgb", np.stack([frame(i + 50) for i in range(N_WRIST)]), T0 + np.arange(N_WRIST) / 7.5)
        ep.commit(success=True)
    s.close()
    return path


def chunks(rrd: Path, reader=None) -> dict[str, list]:
    """Entity path -> its record batches, from rerun's own reader."""
    r = reader or RrdReader(str(rrd))
    out: dict[str, list] = {}
    for c in (r.store().stream() if reader is None else r.stream()):
        out.setdefault(c.entity_path, []).append(c.to_record_batch())
    return out


def column(batches: list, name: str) -> list:
    """One component's values over all of an entity's batches that have it, in time order."""
    rows = []
    for b in batches:
        if name in b.schema.names:
            times = b.column("time").cast("int64").to_pylist() if "time" in b.schema.names else [None] * b.num_rows
            rows += list(zip(times, b.column(name).to_pylist()))
    rows.sort(key=lambda r: -1 if r[0] is None else r[0])
    return rows


def times_s(rows) -> np.ndarray:
    return np.array([t for t, _ in rows], np.float64) / 1e9


@pytest.fixture(scope="module")
def saved(store, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rrd") / "episode1.rrd"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["data", "view", str(store), "--episode", "1", "--save", str(out)]) == 0
    return out, json.loads(buf.getvalue())


def test_save_writes_an_rrd_with_the_episodes_entities_and_both_timelines(saved):
    rrd, printed = saved
    assert printed["path"] == str(rrd) and rrd.stat().st_size > 0
    reader = RrdReader(str(rrd))
    [recording] = reader.recordings()
    assert recording.application_id == "robot_stack" and reader.blueprints(), "one recording and its layout"
    entities = set(reader.store().schema().entity_paths())
    assert EXPECTED_ENTITIES <= entities, EXPECTED_ENTITIES - entities
    assert not any(e.startswith("/cameras/") for e in entities), "calibrated cameras sit in the 3D scene"
    assert printed["timelines"] == ["time", "stamp"]
    by_entity = chunks(rrd)
    stamp_cols = [b for b in by_entity["/world/tcp/measured"] if "stamp" in b.schema.names]
    assert stamp_cols, "wall-clock stamps get their own timeline"
    stamps = np.sort(np.concatenate([b.column("stamp").cast("int64").to_numpy() for b in stamp_cols])) / 1e9
    assert np.allclose(np.unique(stamps), state_stamps(), atol=1e-6)


def test_measured_and_commanded_poses_and_their_tracking_error(saved):
    by_entity = chunks(saved[0])
    t0 = cmd_stamps()[0]                                   # the earliest stamp of the episode
    [(_, strips)] = column(by_entity["/world/tcp_path/measured"], "LineStrips3D:strips")
    assert np.allclose(np.array(strips[0]), ee_positions(), atol=1e-6)
    measured = column(by_entity["/world/tcp/measured"], "Transform3D:translation")
    assert np.allclose(times_s(measured), state_stamps() - t0, atol=1e-6)
    assert np.allclose([v[0] for _, v in measured], ee_positions(), atol=1e-9)
    commanded = column(by_entity["/world/tcp/commanded"], "Transform3D:quaternion")
    assert len(commanded) == N_CMD and np.allclose(commanded[0][1][0], QUAT_10DEG_Z)

    # measured row i follows command i // 5: x differs by 5 mm per row since, z by the 5 mm offset
    i = np.arange(N_STATE)
    expected_mm = 1000.0 * np.hypot(0.005 * (i % 5), 0.005)
    error = column(by_entity["/plots/tracking_error/position_mm"], "Scalars:scalars")
    assert np.allclose([v[0] for _, v in error], expected_mm, atol=1e-6)
    assert np.allclose(times_s(error), state_stamps() - t0, atol=1e-6)
    rotation = column(by_entity["/plots/tracking_error/rotation_deg"], "Scalars:scalars")
    assert np.allclose([v[0] for _, v in rotation], 10.0, atol=1e-6)
    force = column(by_entity["/plots/wrench/force_n"], "Scalars:scalars")
    assert np.allclose([v[0] for _, v in force], 5.0)


def test_gripper_state_colours_the_path_and_is_a_state_lane(saved):
    by_entity = chunks(saved[0])
    [(_, colours)] = column(by_entity["/world/tcp_path/gripper"], "Points3D:colors")
    red = 0xE63C3CFF                                       # CLOSED (230, 60, 60), opaque, as rerun packs RGBA
    closed = np.array(colours) == red
    # the command closes at cmd row 4 (0.399 s); state rows from 0.4 s on are measured with it closed
    assert closed.tolist() == (np.arange(N_STATE) >= 20).tolist()
    lane = column(by_entity["/episode/gripper_state"], "StateChange:state")
    assert [v[0] for _, v in lane] == ["open", "closed"]
    assert np.allclose(times_s(lane), [0.0, cmd_stamps()[4] - cmd_stamps()[0]], atol=1e-6)


def test_contact_phases_sit_at_the_observation_after_their_step_and_the_outcome_at_the_end(saved):
    by_entity = chunks(saved[0])
    lane = column(by_entity["/episode/contact_phase"], "StateChange:state")
    assert [v[0] for _, v in lane] == ["pre_contact", "in_contact", "post_contact"]
    # phase i is reached by action i: it shows from command row i+1 (phases 0, 3, 6 start the runs)
    assert np.allclose(times_s(lane), cmd_stamps()[[1, 4, 7]] - cmd_stamps()[0], atol=1e-6)
    [(t_end, outcome)] = column(by_entity["/episode/outcome"], "StateChange:state")
    assert outcome == ["success"]
    last = max(state_stamps()[-1], cmd_stamps()[-1], T0 + (N_FRONT - 1) / 15, T0 + (N_WRIST - 1) / 7.5)
    assert abs(t_end / 1e9 - (last - cmd_stamps()[0])) < 1e-6
    [(_, text)] = column(by_entity["/episode/summary"], "TextDocument:text")
    assert INSTRUCTION in text[0] and "touch the cube" not in text[0], "episode 1, not the decoy episode 0"


def test_cameras_carry_their_calibration_and_every_frame(saved):
    import cv2
    by_entity = chunks(saved[0])
    front = by_entity["/world/cameras/front"]
    [(_, translation)] = column(front, "Transform3D:translation")
    assert np.allclose(translation[0], np.array(BASE_T_FRONT)[:3, 3])
    [(_, k)] = column(front, "Pinhole:image_from_camera")
    assert np.allclose(np.array(k[0]).reshape(3, 3).T, K_FRONT), "rerun stores the 3x3 column-major"
    blobs = column(front, "EncodedImage:blob")
    assert len(blobs) == N_FRONT
    assert np.allclose(times_s(blobs), np.arange(N_FRONT) / 15 + 0.001, atol=1e-6)
    for i, (_, blob) in enumerate(blobs):
        decoded = cv2.imdecode(np.frombuffer(bytes(blob[0]), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert np.abs(decoded.astype(int) - frame(i)).mean() < 4, f"frame {i} is the recorded one, in RGB order"
    wrist = by_entity["/world/tcp/measured/wrist"]
    [(_, translation)] = column(wrist, "Transform3D:translation")
    assert np.allclose(translation[0], np.array(TCP_T_WRIST)[:3, 3]), "the hand camera rides on the TCP"
    assert len(column(wrist, "EncodedImage:blob")) == N_WRIST


def test_lossless_keeps_the_recorded_frames_bit_exact(store, tmp_path):
    out = tmp_path / "raw.rrd"
    assert main(["data", "view", str(store), "--episode", "1", "--save", str(out), "--lossless"]) == 0
    buffers = column(chunks(out)["/world/cameras/front"], "Image:buffer")
    assert [bytes(bytearray(b[0])) for _, b in buffers] == [frame(i).tobytes() for i in range(N_FRONT)]


def test_an_episode_the_store_lacks_is_a_one_line_error(store, tmp_path, capsys):
    out = tmp_path / "none.rrd"
    assert main(["data", "view", str(store), "--episode", "5", "--save", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no episode 5" in err and str(store) in err


BLOCK_RERUN = """
import sys
class Block:                      # rerun-sdk not installed: its import fails as it would
    def find_spec(self, name, path=None, target=None):
        if name == "rerun" or name.startswith("rerun."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
from robot_stack.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_rerun_the_error_names_the_viewer_extra(store, tmp_path):
    out = tmp_path / "x.rrd"
    proc = subprocess.run([sys.executable, "-c", BLOCK_RERUN, "data", "view", str(store), "--save", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'robot_stack[viewer]'" in lines[0], proc.stderr
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_a_display_view_serves_the_web_viewer_with_the_same_data_and_stops_on_sigint(store, saved, tmp_path):
    web, grpc = _free_port(), _free_port()
    headless = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "robot_stack.cli", "data", "view", str(store), "--episode", "1",
                             "--no-browser", "--web-port", str(web), "--grpc-port", str(grpc)],
                            cwd=ROOT, env=headless, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "web viewer" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        match = re.search(r"http://localhost:(\d+)/\?url=(rerun\+http://\S+)", line)
        assert match and int(match.group(1)) == web, line
        page = urllib.request.urlopen(f"http://localhost:{web}/", timeout=30).read().decode()
        assert "rerun" in page.lower()
        # the data the page loads: rerun's CLI downloads it from the same gRPC proxy; the download lasts as long
        # as the server, so the server is stopped (SIGINT, as Ctrl-C) once the first bytes have arrived
        got = tmp_path / "dl"
        download = subprocess.Popen([str(Path(sys.executable).parent / "rerun"), "download", match.group(2),
                                     "-o", str(got)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not any(f.stat().st_size > 1000 for f in got.glob("*.rrd")) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert download.wait(timeout=30) == 0
        [rrd] = list(got.glob("*.rrd"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # a streamed .rrd has no footer: read it eagerly
            served = set(chunks(rrd, reader=RrdReader(str(rrd))))
        assert EXPECTED_ENTITIES <= served
        saved_entities = set(RrdReader(str(saved[0])).store().schema().entity_paths())
        assert served - {"/__properties"} == saved_entities - {"/__properties"}
        result = json.loads(proc.stdout.read())
        assert result["mode"] == "serve"
    finally:
        for p in (proc, locals().get("download")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_a_twin_episode_from_the_expert_generator(tmp_path):
    """The stream names and calibration the stack itself writes (sim/expert_data) land where expected."""
    from robot_stack.sim.expert_data import generate
    path = tmp_path / "twin.zarr"
    generate("reach", "panda", 1, seed=1, out=str(path), image_size=32, progress=False, durable=False)
    meta = EpisodeStore.open(path).metadata(0)
    out = tmp_path / "twin.rrd"
    assert main(["data", "view", str(path), "--save", str(out)]) == 0
    by_entity = chunks(out)
    assert {"/world/cameras/front", "/world/tcp/measured/wrist", "/world/tcp_path/measured",
            "/plots/tracking_error/position_mm", "/episode/contact_phase"} <= set(by_entity)
    runs = [p for i, p in enumerate(meta["contact_phase"]) if i == 0 or p != meta["contact_phase"][i - 1]]
    assert [v[0] for _, v in column(by_entity["/episode/contact_phase"], "StateChange:state")] == runs
    [(_, outcome)] = column(by_entity["/episode/outcome"], "StateChange:state")
    assert outcome == ["success" if meta["success"] else "failure"]


def test_a_taken_port_is_a_one_line_error_naming_the_flag(store, capsys):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["data", "view", str(store), "--serve", "--no-browser", "--web-port", str(port),
                     "--grpc-port", str(_free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"port {port} is taken" in err and "--web-port" in err
