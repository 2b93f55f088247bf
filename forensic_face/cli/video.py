"""``forensic-face search-video``: follow the faces of a CCTV clip, search the best frames of a track with the
full method and fuse them (``forensic_face.engine.video``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forensic_face.cli.common import (
    ProgressBar,
    add_engine_arguments,
    add_examiner_argument,
    add_setting_arguments,
    engine_config_from_args,
    enroll_with_progress,
    positive_int,
    print_case_line,
    record_search_in_case,
    run_with_case,
    seconds,
)
from forensic_face.faults import printable


class SearchVideoCommand:
    name = "search-video"
    help = "rank a gallery for a face tracked through a video clip, fusing its best frames"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("video", type=Path, help="video file (MP4, AVI, MKV, MOV, ...)")
        parser.add_argument("--gallery", type=Path, required=True, help="gallery folder")
        parser.add_argument("--stride", type=positive_int, default=5,
                            help="detect faces on every Nth frame (default 5)")
        parser.add_argument("--start", type=seconds, default=0.0, help="start time in seconds")
        parser.add_argument("--end", type=seconds, default=None, help="end time in seconds (default: the end)")
        parser.add_argument("--max-frames", type=positive_int, default=2000, help="at most this many sampled frames")
        add_setting_arguments(parser, ["video_frames", "video_fusion"])
        parser.add_argument("--track", type=positive_int, default=1,
                            help="track to search (1: the longest; see the list)")
        parser.add_argument("--top", type=positive_int, default=20, help="identities to list")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        parser.add_argument("--case", type=Path, default=None,
                            help="record the fused search in this case file, as the window does (the video "
                                 "imported as evidence, the frames used, the candidates; replayable)")
        add_examiner_argument(parser)
        add_engine_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return run_with_case(args, self._search)

    def _search(self, args: argparse.Namespace, store: Any) -> int:
        from forensic_face.engine import (
            ConfigError,
            Engine,
            find_tracks,
            frames_searched_text,
            open_video,
            search_track,
            video_no_calibration_reason,
        )

        if args.end is not None and args.end <= args.start:
            raise ConfigError(f"--end {args.end:g} must be later than --start {args.start:g}")
        engine = Engine(engine_config_from_args(args))
        video = open_video(args.video)
        bar = ProgressBar("tracks: ")
        try:
            tracks = find_tracks(video, lambda image: engine.detector.detect([image.pixels])[0], args.stride,
                                 args.start, args.end, args.max_frames, progress=bar, embed=engine.face_templates)
        finally:
            bar.close()
        if not 1 <= args.track <= len(tracks):
            raise ConfigError(f"--track {args.track}: the video has {len(tracks)} track(s); choose 1 to {len(tracks)}")
        gallery = enroll_with_progress(engine, args.gallery)
        bar = ProgressBar()
        try:
            fused = search_track(engine, video, tracks[args.track - 1], gallery, progress=bar)
        finally:
            bar.close()
        record = fused.to_json(top=args.top)
        if store is not None:
            from forensic_face.engine import fused_search_result

            _, recorded = record_search_in_case(store, engine, fused_search_result(fused, gallery, engine.config.top_k),
                                                gallery)
            record.update(recorded)
        record["tracks"] = [{"track": t.id, "faces": len(t.faces), "first_frame": t.faces[0].frame_index,
                             "last_frame": t.last.frame_index} for t in tracks]
        if args.json:
            json.dump(record, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        print(f"== {printable(video.path)}  (SHA-256 {video.sha256}, {video.frame_count} frames at "
              f"{video.fps:.2f} fps)")
        for t in record["tracks"]:
            print(f"   track {t['track']}: {t['faces']} faces, frames {t['first_frame']}-{t['last_frame']}")
        how = "template mean" if fused.fusion == "template-mean" else "score mean"
        used = frames_searched_text(len(fused.frames))
        print(f"   Track {fused.track_id}: {used}" + (f" (quality-weighted {how}):" if len(fused.frames) > 1 else ":"))
        for f in record["frames"]:
            print(f"     frame {f['index']} at {f['time_s']:.2f} s, quality {f['quality']:.1f}, "
                  f"pixels SHA-256 {f['frame_sha256'][:16]}…")
        print("   Candidates are investigative leads for human review, not identifications.")
        for c in record["ranking"]:
            print(f"   {c['rank']:>3}  {c['score']:+.4f}  {printable(c['identity'])}")
        print(f"   No likelihood ratios: {video_no_calibration_reason(len(fused.frames))}.")
        print_case_line(record)
        return 0
