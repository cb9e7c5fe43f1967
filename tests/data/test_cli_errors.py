"""Damaged stores through the CLI: each kind of damage is one stderr line naming the store file and
the episode, exit code 2, no traceback, for `replay` and the `data` commands (issue 35, item 7).

Before: `replay` caught only ValueError (a StoreError escaped as a traceback), `data show/ls/info`
printed tracebacks for damaged chunks, metadata and indexes, and a malformed commit record was an
AttributeError in every command."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robot_stack.cli import main
from tests.data.replay_store import frame_chunk, write_replay_store

ROOT = Path(__file__).resolve().parents[2]


def _truncate(p):
    c = frame_chunk(p, 1, 2)
    c.write_bytes(c.read_bytes()[:-20])
    return ["episode 1", "streams/front_rgb/data", "checksum"]


def _flip(p):
    c = frame_chunk(p, 1, 1)
    raw = bytearray(c.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    c.write_bytes(bytes(raw))
    return ["episode 1", "streams/front_rgb/data", "checksum"]


def _missing_chunk(p):
    c = frame_chunk(p, 1, 3)
    c.unlink()
    return ["episode 1", str(c.relative_to(p)), "missing"]


def _bad_metadata(p):
    (p / "meta/episodes/000001/zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')   # cut short
    return ["episode 1", "meta/episodes/000001/zarr.json"]


def _bad_metadata_value(p):
    f = p / "meta/episodes/000001/zarr.json"
    meta = json.loads(f.read_text())
    meta["attributes"]["seed"] = "three"           # valid JSON, wrong type
    f.write_text(json.dumps(meta))
    return ["episode 1", "meta/episodes/000001", "seed 'three'"]


def _missing_metadata(p):
    shutil.rmtree(p / "meta/episodes/000001")
    return ["episode 1", "meta/episodes/000001", "missing"]


def _bad_episode_index(p):
    shutil.rmtree(p / "meta/episode_ends/front_rgb/c")   # the index's one chunk is gone
    # every episode's rows are lost with it: `data ls` meets it at episode 0, the others at the episode asked for
    return [re.compile(r"episode [01],"), "meta/episode_ends/front_rgb", "missing"]


def _missing_root(p):
    (p / "zarr.json").unlink()
    return [str(p / "zarr.json"), "missing"]


def _bad_root_json(p):
    (p / "zarr.json").write_text((p / "zarr.json").read_text()[:40])   # truncated mid-write by a careless copy
    return [str(p / "zarr.json"), "unreadable"]


def _bad_commit_record(p):
    meta = json.loads((p / "zarr.json").read_text())
    meta["attributes"]["robot_stack_episode_store"]["streams"] = "front_rgb"
    (p / "zarr.json").write_text(json.dumps(meta))
    return [str(p / "zarr.json"), "streams"]


def _bad_record_count(p):
    meta = json.loads((p / "zarr.json").read_text())
    meta["attributes"]["robot_stack_episode_store"]["num_episodes"] = "three"
    (p / "zarr.json").write_text(json.dumps(meta))
    return [str(p / "zarr.json"), "num_episodes"]


# damage kind -> the commands that read the damaged part (`data info` reads no chunk and no episode index)
CHUNK_COMMANDS = ("show", "video", "replay", "replay-joints", "merge")
META_COMMANDS = ("info", "ls", "show", "replay", "merge")
ROOT_COMMANDS = ("info", "ls", "show", "video", "verify", "replay", "merge")
CASES = [(_truncate, CHUNK_COMMANDS), (_flip, CHUNK_COMMANDS), (_missing_chunk, CHUNK_COMMANDS),
         (_bad_metadata, META_COMMANDS), (_missing_metadata, META_COMMANDS),
         (_bad_metadata_value, ("replay", "merge")),
         (_bad_episode_index, ("ls", "show", "video", "replay", "merge")),
         (_missing_root, ROOT_COMMANDS), (_bad_root_json, ROOT_COMMANDS), (_bad_commit_record, ROOT_COMMANDS),
         (_bad_record_count, ROOT_COMMANDS)]


def _argv(cmd: str, store: Path, tmp_path: Path) -> list[str]:
    return {
        "info": ["data", "info", str(store)],
        "ls": ["data", "ls", str(store)],
        "show": ["data", "show", str(store), "--episode", "1"],
        "video": ["data", "video", str(store), "--episode", "1", "--out", str(tmp_path / "ep.mp4")],
        "verify": ["data", "verify", str(store)],
        "replay": ["replay", str(store), "--episode", "1"],
        "replay-joints": ["replay", str(store), "--episode", "1", "--mode", "joints"],
        "merge": ["data", "merge", str(tmp_path / "merged"), str(store)],
    }[cmd]


def _assert_one_line_error(rc: int, out: str, err: str, store: Path, expect: list[str]) -> str:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("robot-stack: error: "), line
    assert str(store) in line, line          # names the store (its file, for whole-store damage)
    for text in expect:                       # and the episode and the file inside the store
        assert (text.search(line) if isinstance(text, re.Pattern) else text in line), (text, line)
    return line


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_replay_store(tmp_path_factory.mktemp("pristine") / "store")


@pytest.mark.parametrize("damage,commands", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_each_damage_kind_is_one_line_naming_file_and_episode(damage, commands, pristine, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    expect = damage(store)
    for cmd in commands:
        rc = main(_argv(cmd, store, tmp_path))
        captured = capsys.readouterr()
        _assert_one_line_error(rc, captured.out, captured.err, store, expect)
        assert not (tmp_path / "merged").exists()   # a failed merge leaves no output behind


def test_episode_outside_the_store_is_an_error(pristine, capsys):
    for argv in (["data", "show", str(pristine), "--episode", "7"], ["replay", str(pristine), "--episode", "7"]):
        rc = main(argv)
        captured = capsys.readouterr()
        _assert_one_line_error(rc, captured.out, captured.err, pristine, ["no episode 7", "has 3"])


def test_store_without_the_streams_replay_needs(tmp_path, capsys):
    from robot_stack.data import EpisodeStore
    from tests.data.episodes import write_episode
    store = tmp_path / "other"
    with EpisodeStore.create(store, durable=False) as s:
        write_episode(s, 0)
    rc = main(["replay", str(store)])
    captured = capsys.readouterr()
    _assert_one_line_error(rc, captured.out, captured.err, store, ["episode 0", "ee_pose"])


def test_verify_lists_damage_and_errors_on_an_unreadable_store(pristine, tmp_path, capsys):
    """verify reports damage inside a readable store (exit 1, a line per problem); a store it cannot open is an error."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    _truncate(store)
    _missing_metadata(store)
    assert main(["data", "verify", str(store)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "episode 1: streams/front_rgb/data:" in captured.out and "episode 1: meta/episodes/000001:" in captured.out
    assert captured.out.strip().endswith("2 problem(s)")


@pytest.mark.parametrize("damage,argv", [(_truncate, ["replay", "{store}", "--episode", "1"]),
                                         (_missing_root, ["data", "info", "{store}"]),
                                         (_bad_commit_record, ["data", "ls", "{store}"])],
                         ids=["truncate-replay", "missing_root-info", "bad_commit_record-ls"])
def test_real_process_prints_no_traceback(damage, argv, pristine, tmp_path):
    """The CLI in its own process, as a user runs it: the same one line on stderr, exit code 2."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    expect = damage(store)
    r = subprocess.run([sys.executable, "-m", "robot_stack.cli", *[a.format(store=store) for a in argv]],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    _assert_one_line_error(r.returncode, r.stdout, r.stderr, store, expect)
