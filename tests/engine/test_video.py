"""Video probes: decoding errors, frame sampling, track linking, frame fusion, search-video end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from forensic_face.engine.errors import ImageLoadError, NoFaceDetected
from forensic_face.engine.results import FaceDetection
from forensic_face.engine.video import (
    frame_image,
    fuse_rankings,
    iter_frames,
    link_tracks,
    open_video,
)


def _face(x: float, y: float, w: float, score: float = 0.99) -> FaceDetection:
    return FaceDetection(box=np.array([x, y, x + w, y + w], np.float32), score=score,
                         landmarks=np.zeros((5, 2), np.float32))


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def test_bad_video_files_get_clear_errors(tmp_path: Path) -> None:
    from forensic_face.cli import main

    with pytest.raises(ImageLoadError, match="does not exist"):
        open_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        open_video(tmp_path / "empty.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageLoadError, match="cannot be opened|no decodable frame"):
        open_video(tmp_path / "noise.mp4")
    # A clip cut short: the frames before the cut are read, then sampling stops (no crash, no invented frames).
    clip = write_clip(tmp_path / "clip.avi", [np.full((48, 64, 3), 20 * k, np.uint8) for k in range(10)])
    data = clip.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    try:
        frames = list(iter_frames(open_video(tmp_path / "cut.avi"), stride=1))
    except ImageLoadError as exc:  # some containers cannot be opened without their index: said so, plainly
        assert "cut.avi" in str(exc) and "ffmpeg" in str(exc)
    else:
        assert 1 <= len(frames) < 10
    assert main(["search-video", str(tmp_path / "noise.mp4"), "--gallery", str(tmp_path)]) == 2


def test_frames_are_sampled_by_stride_and_decode_again_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    video = open_video(write_clip(tmp_path / "clip.avi", frames, fps=4.0))
    assert (video.width, video.height, video.frame_count) == (64, 48, 12) and video.fps == pytest.approx(4.0)
    sampled = list(iter_frames(video, stride=5))
    assert [f.index for f in sampled] == [0, 5, 10]
    assert [f.time_s for f in sampled] == [0.0, 1.25, 2.5]
    assert [f.index for f in iter_frames(video, stride=2, start_s=1.0, end_s=2.0)] == [4, 6, 8]
    again = frame_image(video, 5, sampled[1].image.sha256)
    np.testing.assert_array_equal(again.pixels, sampled[1].image.pixels)
    with pytest.raises(ImageLoadError, match="cannot be decoded again"):
        frame_image(video, 5, "0" * 64)


def test_link_tracks_follows_two_people_and_breaks_after_a_gap() -> None:
    frames = []
    for k in range(6):
        faces = [_face(10 + 3 * k, 10, 30), _face(200 - 3 * k, 50, 30)]
        frames.append((5 * k, k / 2, faces, [1.0 + k, 2.0], f"sha{k}"))
    frames.append((200, 20.0, [_face(28, 10, 30)], [9.0], "late"))  # same place, long after: a new track
    tracks = link_tracks(frames, max_gap_frames=15)
    assert [len(t.faces) for t in tracks] == [6, 6, 1]
    assert all(abs(f.face.box[0] - (10 + 3 * n)) < 1e-6 for n, f in enumerate(tracks[0].faces))
    best = tracks[0].best(3)
    assert [f.frame_index for f in best] == [15, 20, 25] and best[0].frame_sha256 == "sha3"


def test_link_tracks_keeps_two_crossing_people_apart_by_appearance() -> None:
    """Two people walk towards each other, b hides a for a frame where they meet, and both stop there. By boxes
    alone each track goes on as if its person had walked on (a's track takes b, who stands where a was heading,
    and b's takes a); with templates each track keeps its person."""
    rng = np.random.default_rng(0)
    person = {"a": rng.normal(size=128), "b": rng.normal(size=128)}
    # (x of a or None when hidden, x of b) per sampled frame; a's boxes at y=10, b's at y=12.
    walk = [(0, 100), (20, 80), (40, 60), (None, 50), (45, 55), (45, 55)]
    frames, templates = [], []
    for k, (xa, xb) in enumerate(walk):
        faces = ([_face(xa, 10, 30)] if xa is not None else []) + [_face(xb, 12, 30)]
        who = (["a"] if xa is not None else []) + ["b"]
        frames.append((k, k / 10, faces, [1.0] * len(faces), f"sha{k}"))
        templates.append([person[w] + 0.3 * rng.normal(size=128) for w in who])

    def people(tracks: list) -> list[set[str]]:  # type: ignore[type-arg]
        return [{"a" if f.face.box[1] == 10 else "b" for f in t.faces} for t in tracks]

    by_box = link_tracks(frames)
    assert any(len(p) == 2 for p in people(by_box)), people(by_box)  # a track swapped people where they met
    by_appearance = link_tracks(frames, templates=templates)
    assert people(by_appearance) == [{"a"}, {"b"}] and [len(t.faces) for t in by_appearance] == [5, 6]
    assert by_appearance[0].faces[0].template is not None


def test_fusion_weights_frames_by_quality() -> None:
    from types import SimpleNamespace

    a = SimpleNamespace(ranking=(("x", 0.9), ("y", 0.1)))
    b = SimpleNamespace(ranking=(("y", 0.5), ("x", 0.2)))
    assert fuse_rankings([a, b])[0][0] == "x"  # equal weights: x 0.55, y 0.30
    assert fuse_rankings([a, b], [1.0, 9.0])[0][0] == "y"  # the better frame decides: y 0.46, x 0.27
    with pytest.raises(ValueError):
        fuse_rankings([])


def test_search_video_json(tmp_path: Path, lfw_test_people, lfw_image, capsys) -> None:  # type: ignore[no-untyped-def]
    """A person walks across a clip; the track is found, its best frames searched and fused, and the result
    names the frames used by index, time and pixel hash."""
    from forensic_face.cli import main

    people = [name for name, count in lfw_test_people if count >= 2][:4]
    gallery = tmp_path / "gallery"
    for name in people:
        (gallery / name).mkdir(parents=True)
        shutil.copy(lfw_image(name, 1), gallery / name / f"{name}_0001.jpg")
    # The centre of an LFW image is its face (the edges often show other people): 130 px of it, at 110 px.
    face = np.asarray(Image.open(lfw_image(people[1], 2)).convert("RGB").crop((60, 60, 190, 190))
                      .resize((110, 110), Image.BICUBIC))
    frames = []
    for k in range(8):
        frame = np.full((180, 320, 3), 70, np.uint8)
        frame[35:145, 20 + 20 * k:130 + 20 * k] = face
        frames.append(frame)
    clip = write_clip(tmp_path / "walk.avi", frames, fps=8.0)
    video = open_video(clip)
    capsys.readouterr()
    assert main(["search-video", str(clip), "--gallery", str(gallery), "--stride", "2", "--frames", "2",
                 "--budget", "none", "--scales", "2", "--hypotheses", "1", "--upsampler", "bicubic",
                 "--device", "cpu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sha256"] == video.sha256 and record["track"] == 1
    assert record["tracks"][0]["faces"] == 4, record["tracks"]  # frames 0, 2, 4, 6
    assert len(record["frames"]) == 2 and all(f["index"] in (0, 2, 4, 6) for f in record["frames"])
    assert all(len(f["frame_sha256"]) == 64 for f in record["frames"])
    assert sorted(c["identity"] for c in record["ranking"]) == sorted(people)
    assert record["fusion"] == "score-mean"
    # Template-mean fusion: the same frames, one search over their averaged templates.
    assert main(["search-video", str(clip), "--gallery", str(gallery), "--stride", "2", "--frames", "2",
                 "--video-fusion", "template-mean", "--budget", "none", "--scales", "2", "--hypotheses", "1",
                 "--upsampler", "bicubic", "--device", "cpu", "--json"]) == 0
    tmean = json.loads(capsys.readouterr().out)
    assert tmean["fusion"] == "template-mean"
    assert [f["frame_sha256"] for f in tmean["frames"]] == [f["frame_sha256"] for f in record["frames"]]
    assert sorted(c["identity"] for c in tmean["ranking"]) == sorted(people)
    # --case records the fused search as the window does: the clip is evidence, the frames used are named.
    from forensic_face.store.case_store import CaseStore

    case_path = tmp_path / "clip.ffcase"
    CaseStore.create(case_path, "V-1", "Clip", "J. Examiner").close()
    assert main(["search-video", str(clip), "--gallery", str(gallery), "--stride", "2", "--frames", "2",
                 "--budget", "none", "--scales", "2", "--hypotheses", "1", "--upsampler", "bicubic",
                 "--device", "cpu", "--json", "--case", str(case_path)]) == 0
    recorded = json.loads(capsys.readouterr().out)
    with CaseStore.open(case_path) as store:
        stored = store.search(recorded["case"]["search_id"])
        assert stored.probe.sha256 == video.sha256 and stored.probe.format == "video"
        assert [f["index"] for f in stored.provenance["video"]["frames"]] == [f["index"] for f in record["frames"]]
    # One frame searched is said to be one frame, not a fusion.
    assert main(["search-video", str(clip), "--gallery", str(gallery), "--stride", "2", "--frames", "1",
                 "--budget", "none", "--scales", "2", "--hypotheses", "1", "--upsampler", "bicubic",
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "Track 1: 1 video frame searched (none fused with it):" in text
    assert "No likelihood ratios: a video track's scores (1 video frame searched (none fused with it))" in text
    assert "fused multi-frame" not in text and "quality-weighted" not in text
    # A clip with no face: a clear message, exit 2.
    blank = write_clip(tmp_path / "blank.avi", [np.full((120, 160, 3), 90, np.uint8)] * 4)
    assert main(["search-video", str(blank), "--gallery", str(gallery), "--device", "cpu"]) == 2
    assert "no face on" in capsys.readouterr().err
    with pytest.raises(NoFaceDetected):
        from forensic_face.engine.video import find_tracks

        find_tracks(open_video(blank), lambda image: [])


def test_video_protocol_reports_single_and_fused_rank1(tmp_path: Path, lfw_root: Path) -> None:
    """eval-video on a few people: every clip ranked for each way of using it, with McNemar against the best
    single frame; deterministic for a seed."""
    from forensic_face.cli import main

    args = ["eval-video", "--subset", "12", "--frames", "3", "--budget", "none", "--scales", "2",
            "--hypotheses", "1", "--upsampler", "bicubic", "--device", "cpu", "--lfw", str(lfw_root)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["clips"] >= 3
    assert set(summary["rank1"]) == {"single_best", "random_frame", "fused_3", "fused_5", "fused_10",
                                     "tmean_3", "tmean_5", "tmean_10"}
    assert all(0 <= v <= 100 for v in summary["rank1"].values())
    clips = json.loads((tmp_path / "a" / "video_protocol.json").read_text())["clips"]
    assert len(clips) == summary["clips"] and all(len(c["frames"]) == 3 for c in clips)
    assert all(16 <= f["width_px"] <= 32 for c in clips for f in c["frames"])
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["rank1"] == summary["rank1"]


def test_track_started_from_a_drawn_box_follows_the_face_until_it_leaves(tmp_path: Path, lfw_test_people,
                                                                          lfw_image) -> None:  # type: ignore[no-untyped-def]
    """A 22 px face the detector is not asked about: the examiner draws its box on frame 2, the track follows the
    face patch (cross-correlation) as it walks right, back to frame 0, and ends when the face leaves the frame."""
    from forensic_face.engine.detect import manual_face
    from forensic_face.engine.video import track_from_box

    name = lfw_test_people[0][0]
    face = np.asarray(Image.open(lfw_image(name, 1)).convert("RGB").crop((70, 70, 180, 180))
                      .resize((22, 22), Image.BICUBIC))
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(40, 200, (120, 200, 3), dtype=np.uint8), (0, 0), 3)
    frames = []
    for k in range(12):
        frame = background.copy()
        if k < 9:  # gone from frame 9 on
            frame[50:72, 10 + 8 * k:32 + 8 * k] = face
        frames.append(frame)
    video = open_video(write_clip(tmp_path / "walk.avi", frames))
    steps: list[int] = []
    track = track_from_box(video, 2, [26, 50, 48, 72], lambda pixels, box: manual_face(pixels, box), stride=2,
                           track_id=7, progress=lambda d, t, m: steps.append(d))
    assert track.id == 7 and steps
    assert [f.frame_index for f in track.faces] == [0, 2, 4, 6, 8]  # frame 0 too: followed backwards
    for f in track.faces:  # within two pixels of where the face really is
        assert abs(float(f.face.box[0]) - (10 + 8 * f.frame_index)) <= 2, (f.frame_index, f.face.box)
        assert abs(float(f.face.box[1]) - 50) <= 2
        assert len(f.frame_sha256) == 64 and f.thumbnail is not None
    # A detector that finds the face is preferred to the patch where it links.
    found = _face(10 + 8 * 4 + 1, 50, 22)
    track = track_from_box(video, 2, [26, 50, 48, 72], lambda pixels, box: manual_face(pixels, box),
                           detect=lambda image: [found], stride=2)
    assert track.faces[2].face is found


def _walk(frame_indices: list[int], x0: float, y0: float, w0: float, step_widths: float, growth: float,
          per: int = 5) -> list[tuple[int, float, list[FaceDetection], list[float], str]]:
    """One face on each of ``frame_indices``: every ``per`` frames it moves right by ``step_widths`` of its width
    and grows ``growth``-fold (as a person walking towards the camera, seen every ``per``th frame)."""
    frames = []
    for index in frame_indices:
        steps = index / per
        w = w0 * growth ** steps
        x = x0 + sum(step_widths * w0 * growth ** k for k in range(int(steps)))
        frames.append((index, index / 8, [_face(x, y0 + 0.5 * (w - w0), w)], [1.0], f"sha{index}"))
    return frames


def test_a_face_growing_several_fold_between_samples_stays_one_track() -> None:
    """Sampled every 5th frame, the face grows 1.7x and moves its own width between samples: 12 px to 59 px
    over four samples. One track."""
    frames = _walk([0, 5, 10, 15], 10, 10, 12, 1.0, 1.7)
    assert [f.width_px for f in (fr[2][0] for fr in frames)] == pytest.approx([12, 20.4, 34.68, 58.96], rel=1e-3)
    tracks = link_tracks(frames, max_gap_frames=15)
    assert [len(t.faces) for t in tracks] == [4]
    # Shrinking (walking away) links just as well.
    backwards = [(k, i / 8, faces, q, sha) for k, (i, _, faces, q, sha) in enumerate(reversed(frames))]
    assert [len(t.faces) for t in link_tracks([(5 * k, t, f, q, s) for k, t, f, q, s in backwards])] == [4]


def test_a_missed_sample_does_not_split_the_track() -> None:
    """The face is not detected on frame 15 (blur, a turn of the head); on frame 20 it is two steps further,
    where the track's motion predicts it."""
    frames = _walk([0, 5, 10, 20, 25], 10, 10, 14, 1.2, 1.15)
    tracks = link_tracks(frames, max_gap_frames=15)
    assert [len(t.faces) for t in tracks] == [5]
    # Beyond the allowed gap it is a new track.
    assert len(link_tracks(frames, max_gap_frames=5)) == 2


def test_two_people_crossing_keep_their_tracks_by_motion() -> None:
    """a walks right, b walks left along the same line; they pass each other between two samples. The boxes
    overlap most with the other person's last box just after the crossing; their motion says who is who."""
    frames = []
    for k in range(6):
        faces = [_face(20 * k, 10, 30), _face(100 - 20 * k, 14, 30)]
        frames.append((5 * k, k / 2, faces, [1.0, 1.0], f"sha{k}"))
    tracks = link_tracks(frames, max_gap_frames=15)
    assert [len(t.faces) for t in tracks] == [6, 6]
    assert [{float(f.face.box[1]) for f in t.faces} for t in tracks] == [{10.0}, {14.0}]


def _indexed_clip(tmp_path: Path, num_frames: int) -> Path:
    """A clip whose frame k is uniformly grey level 8k, so a fake detector knows which frame it is shown."""
    return write_clip(tmp_path / "indexed.avi", [np.full((96, 128, 3), 8 * k, np.uint8) for k in range(num_frames)])


def _frame_number(image) -> int:  # type: ignore[no-untyped-def]
    return int(round(float(image.pixels.mean()) / 8))


def test_a_thin_track_is_sampled_more_densely(tmp_path: Path) -> None:
    """A face seen on frames 8 to 17 of a clip sampled every 5th frame appears on two samples (10, 15): the
    frames around them are searched too, and the track gets the faces found there."""
    from forensic_face.engine.video import find_tracks

    video = open_video(_indexed_clip(tmp_path, 30))
    asked: list[int] = []

    def detect(image):  # type: ignore[no-untyped-def]
        k = _frame_number(image)
        asked.append(k)
        return [_face(10 + 3 * k, 20, 16)] if 8 <= k <= 17 else []

    tracks = find_tracks(video, detect, stride=5)
    assert asked[:6] == [0, 5, 10, 15, 20, 25]
    assert sorted(asked[6:]) == [6, 8, 12, 14, 16, 18]  # every 2nd frame from a stride before to a stride after
    assert [f.frame_index for f in tracks[0].faces] == [8, 10, 12, 14, 15, 16]
    assert len(tracks) == 1
    # Bounded: no more extra frames than allowed.
    asked.clear()
    find_tracks(video, detect, stride=5, max_dense_frames=2)
    assert len(asked) == 6 + 2


def test_a_box_drawn_on_a_middle_frame_is_followed_backwards_and_forwards(tmp_path: Path) -> None:
    """A textured 20 px 'face' crosses the frame from frame 3 to frame 14; the box drawn on frame 8 gives the
    whole appearance, by the patch alone and by detections that grow as the face comes nearer."""
    from forensic_face.engine.detect import manual_face
    from forensic_face.engine.video import track_from_box

    rng = np.random.default_rng(3)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), (0, 0), 1)
    background = cv2.GaussianBlur(rng.integers(60, 190, (100, 220, 3), dtype=np.uint8), (0, 0), 4)
    frames = []
    for k in range(18):
        frame = background.copy()
        if 3 <= k <= 14:
            frame[40:60, 10 * k:10 * k + 20] = patch
        frames.append(frame)
    video = open_video(write_clip(tmp_path / "cross.avi", frames))
    track = track_from_box(video, 8, [80, 40, 100, 60], lambda pixels, box: manual_face(pixels, box), stride=2)
    assert [f.frame_index for f in track.faces] == [4, 6, 8, 10, 12, 14]
    assert all(abs(float(f.face.box[0]) - 10 * f.frame_index) <= 2 for f in track.faces)
    # A face coming nearer (growing 1.3x per sample, on frames 2 to 16): the detections that continue the track
    # are linked, and where there is none the face patch is followed; outside 2-16 neither is there.
    def box_of(k: int) -> list[float]:
        w = 20 * 1.3 ** ((k - 8) / 2)
        return [80 + 5 * (k - 8), 40, 80 + 5 * (k - 8) + w, 40 + w]

    grown = []
    for k in range(18):
        frame = background.copy()
        if 2 <= k <= 16:
            x1, y1, x2, y2 = (int(round(v)) for v in box_of(k))
            frame[y1:y2, x1:x2] = cv2.resize(patch, (x2 - x1, y2 - y1))
        frame[:8, :8] = 8 * k  # the frame number, for the fake detector (one JPEG block: kept through compression)
        grown.append(frame)

    def detect(image):  # type: ignore[no-untyped-def]
        k = int(round(float(image.pixels[:8, :8].mean()) / 8))
        return [_face(box_of(k)[0], 40, box_of(k)[2] - box_of(k)[0])] if 2 <= k <= 16 and k != 12 else []

    video = open_video(write_clip(tmp_path / "grown.avi", grown))
    track = track_from_box(video, 8, box_of(8), lambda pixels, box: manual_face(pixels, box), detect=detect, stride=2)
    assert [f.frame_index for f in track.faces] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert track.faces[0].face.width_px == pytest.approx(20 * 1.3 ** -3) and track.faces[-1].face.width_px > 50


def test_messages_say_how_many_frames_were_searched() -> None:
    """One frame is never called a fusion (a short track, or --frames 1); several are counted."""
    from types import SimpleNamespace

    from forensic_face.calibration import calibration_for_result, why_no_calibration

    def result(num_frames: int) -> SimpleNamespace:
        return SimpleNamespace(provenance={"video": {"frames": [{"index": 5 * k} for k in range(num_frames)]}})

    one, three = why_no_calibration(result(1)), why_no_calibration(result(3))
    assert "1 video frame searched" in one and "fused" not in one.replace("none fused", "") and "several" not in one
    assert "3 video frames searched and fused" in three
    assert calibration_for_result(result(1)) is None


def test_walk_protocol_tracks_a_person_walking_towards_the_camera(tmp_path: Path, lfw_root: Path) -> None:
    """eval-video --kind walk on a few people: a clip per person whose face grows from 12 to 36 px, tracked as
    search-video does; every clip is accounted for and the true tracks hold several frames. The clips are seeded."""
    from forensic_face.cli import main
    from forensic_face.eval.protocol import lfw_xres_split
    from forensic_face.eval.video_protocol import WalkSettings, make_walk_clip, walk_widths

    widths = walk_widths(WalkSettings())
    assert widths[0] == pytest.approx(12) and widths[-1] == pytest.approx(36) and np.all(np.diff(widths) > 0)
    probes = [p for p in lfw_xres_split(lfw_root, subset=4).probes]
    person = [p for p in probes if p.identity == probes[0].identity]
    boxes = [make_walk_clip(person[0].identity, person, WalkSettings(), tmp_path / f"{k}.avi") for k in (1, 2)]
    np.testing.assert_array_equal(boxes[0], boxes[1])
    assert (tmp_path / "1.avi").read_bytes() == (tmp_path / "2.avi").read_bytes()
    assert main(["eval-video", "--kind", "walk", "--subset", "5", "--budget", "none", "--scales", "2",
                 "--hypotheses", "1", "--upsampler", "bicubic", "--device", "cpu", "--lfw", str(lfw_root),
                 "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    clips = json.loads((tmp_path / "a" / "walk_protocol.json").read_text())["clips"]
    assert summary["clips"] == len(clips) >= 2 and summary["settings"]["widths_px"] == [12.0, 36.0]
    assert summary["mean_frames_per_true_track"] >= 3, clips
    assert all(c["rank"] is None or 1 <= c["rank"] <= 5 for c in clips)
    # The box drawn on the middle sampled frame (10) is followed both ways.
    assert all(c["drawn"]["frame"] == 10 for c in clips)
    assert any(min(c["drawn"]["frames"]) < 10 < max(c["drawn"]["frames"]) for c in clips), clips
