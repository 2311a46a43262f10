"""MOTChallenge tracking datasets (MOT16, MOT17, MOT20 and the many sets in their layout).

Layout, one folder per sequence::

    data_dir/{split}/{SEQ}/seqinfo.ini        [Sequence] imDir, frameRate, seqLength, imWidth, imHeight, imExt
    data_dir/{split}/{SEQ}/img1/000001.jpg    frames, numbered from 1
    data_dir/{split}/{SEQ}/gt/gt.txt          frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility

Boxes: MOTChallenge's instructions say "All frame numbers, target IDs and bounding boxes are
1-based": the top-left image pixel is (1, 1). Inside the library boxes are XYXY in 0-based
continuous pixels, so ``bb_left, bb_top, bb_width, bb_height`` become ``x1 = bb_left - 1``,
``y1 = bb_top - 1``, ``x2 = x1 + bb_width``, ``y2 = y1 + bb_height``, converted here once (as VOC's
1-based corners are in ``datasets/voc.py``). :func:`~centernet_lightning.datasets.mot_io.read_mot_txt` and
:func:`~centernet_lightning.datasets.mot_io.write_mot_txt` use the same convention, so a model trained on
these boxes, written as results and scored against the same ``gt.txt`` is not one pixel off.
FairMOT's label scripts and TrackEval's loader read the numbers with no shift; IoU-based metrics do
not notice, since ground truth and results share it.

Filters, after the MOT17 devkit (class ids in :data:`MOT_CLASSES`) and the tools that train on it:

- targets: rows of a class in ``classes`` (default 1, pedestrian) with ``conf`` (the "consider"
  flag) non-zero and ``visibility >= min_visibility``. ``min_visibility`` defaults to 0, as in
  FairMOT's ``gen_labels_16.py`` (CenterTrack uses 0.25);
- ignore regions (``ignore_distractors=True``): rows of the distractor classes (2 person on
  vehicle, 7 static person, 8 distractor, 12 reflection, whatever their flag: MOT17 marks them
  all 0), and targets hidden below ``min_visibility``. They are people, so they are neither
  objects nor background: no training target and no penalty in evaluation, like TrackEval, which
  removes predictions that match a distractor. CenterTrack's converter keeps them the same way
  (category -1); FairMOT drops them, which ``ignore_distractors=False`` does;
- dropped: every other row (vehicles, occluders, crowd) and targets whose flag is 0.

Identities: every sequence's target ids are renumbered and offset so they are unique across the
sequences read (see :mod:`~centernet_lightning.datasets.tracking`); ignore regions get -1.

Bad input: a missing ``seqinfo.ini`` (or missing keys) means defaults (``imDir=img1``,
``frameRate=30``, the frames found in ``img1/``, each frame at its own size) and a warning; a
sequence without ``gt/gt.txt`` (a test split) has no objects, with a warning; a malformed gt line,
an id -1 (the untracked rows of a ``det.txt``), an unknown class, a frame outside the sequence or an
identity twice in one frame is an error naming the file and line. With ``imWidth``/``imHeight``
known, a frame of another size is resized to it (a warning names the file, see
:mod:`~centernet_lightning.datasets.common`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, SampleTransform
from centernet_lightning.datasets.mot_io import (
    SEQINFO_KEYS,
    MOTRows,
    check_gt_identities,
    read_mot_txt,
    read_seqinfo,
    seqinfo_number,
)
from centernet_lightning.datasets.tracking import (
    FrameRecord,
    SequenceInfo,
    build_frame_records,
    check_unique_identities,
    report_unannotated,
)
from centernet_lightning.image_io import IMAGE_EXTENSIONS

__all__ = ["MOT_CLASSES", "MOT_DISTRACTOR_CLASSES", "MOTDataset", "read_mot_gt"]

logger = logging.getLogger(__name__)

# Class ids of the MOT16/17/20 ground truth (the devkit's and TrackEval's names).
MOT_CLASSES: dict[int, str] = {
    1: "pedestrian", 2: "person_on_vehicle", 3: "car", 4: "bicycle", 5: "motorbike", 6: "non_mot_vehicle",
    7: "static_person", 8: "distractor", 9: "occluder", 10: "occluder_on_ground", 11: "occluder_full",
    12: "reflection", 13: "crowd",
}  # fmt: skip
# Classes whose matched predictions TrackEval removes (MOT20 adds 6, non_mot_vehicle).
MOT_DISTRACTOR_CLASSES = (2, 7, 8, 12)
GT_COLUMNS = "frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility"
_DEFAULT_FRAME_RATE = 30.0
_DETECTOR_COPY = re.compile(r"^(.*)-(DPM|FRCNN|SDP)$")  # MOT17 ships each sequence once per detector


def read_mot_gt(path: Path, frame_ids: np.ndarray | None = None) -> MOTRows:
    """Read and check a MOTChallenge ``gt.txt`` for training.

    :func:`~centernet_lightning.datasets.mot_io.read_mot_txt` parses the file (and checks frames,
    ids and boxes); this adds the checks a training set needs: the 9 columns, the class,
    the visibility and the frames of the sequence.

    Args:
        path: the file; lines ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility``
            (blank lines skipped).
        frame_ids: int [F] the frame numbers the sequence has, or None to skip that check.

    Returns:
        the rows, boxes XYXY in 0-based pixels; ``extra`` holds ``class, visibility``.

    Raises:
        ValueError naming the file and line for a row :func:`read_mot_txt` refuses, fewer than 9
        values, a negative id (-1: a ``det.txt`` given as ground truth, see
        :func:`~centernet_lightning.datasets.mot_io.check_gt_identities`), a non-finite,
        non-integer or unknown class (:data:`MOT_CLASSES`), a negative width or height, a
        visibility outside [0, 1] or a frame the sequence does not have.
    """
    rows = read_mot_txt(path)
    if not len(rows):
        return MOTRows.empty(extra_columns=2)
    check_gt_identities(rows, path)
    if rows.extra.shape[1] < 2:
        raise ValueError(
            f"{path}, line {rows.lines[0]}: expected 9 values '{GT_COLUMNS}'; class and visibility are missing"
        )
    classes, visibility = rows.extra[:, 0], rows.extra[:, 1]
    checks = [
        (~np.isfinite(rows.extra[:, :2]).all(axis=1), "non-finite class or visibility"),
        (classes != np.round(classes), "the class (column 8) must be a whole number"),
        (~np.isin(classes, list(MOT_CLASSES)), "unknown class (the MOT16/17/20 classes are 1..13, see MOT_CLASSES)"),
        ((rows.boxes[:, 2:] < rows.boxes[:, :2]).any(axis=1), "negative box width or height"),
        ((visibility < 0) | (visibility > 1), "visibility outside [0, 1]"),
    ]
    if frame_ids is not None:
        known = f"{frame_ids.min()}..{frame_ids.max()}" if len(frame_ids) else "none"
        checks.append((~np.isin(rows.frames, frame_ids), f"frame not in the sequence (its frames: {known})"))
    for bad, reason in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}, line {rows.lines[row]}: {reason}")
    return replace(rows, extra=rows.extra[:, :2])


class MOTDataset(DetectionDataset):
    """Frames of MOTChallenge sequences with identities (see the module docstring for the filters).

    One record (a :class:`~centernet_lightning.datasets.tracking.FrameRecord`) per frame, in sorted
    sequence order then frame order; ``image_id`` is the running index; frames without objects are
    kept. ``sequences`` maps each sequence name to its
    :class:`~centernet_lightning.datasets.tracking.SequenceInfo`; ``num_identities`` counts the
    identities of all sequences read (the re-ID classifier's size).

    Args:
        data_dir: dataset root (e.g. ``MOT17``), holding ``{split}/``.
        split: e.g. ``"train"``, ``"test"``.
        transforms: callable ``sample -> sample`` or None.
        sequences: names of the sequences to read (default: every folder of the split). MOT17 has
            each sequence three times (``-DPM``, ``-FRCNN``, ``-SDP``, same frames and gt); FairMOT
            trains on one copy, e.g. the ``-SDP`` folders.
        classes: MOT class ids that are targets, in label order (default ``(1,)``, pedestrian).
        class_names: names of the labels (default: the devkit names of ``classes``).
        min_visibility: targets less visible than this become ignore regions (or are dropped).
        ignore_distractors: keep distractors and hidden targets as ignore regions (else drop them).
        distractor_classes: MOT class ids treated as distractors.
        skip_bad_images: drop/skip missing or unreadable frames instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "train",
        transforms: SampleTransform | None = None,
        sequences: Sequence[str] | None = None,
        classes: Sequence[int] = (1,),
        class_names: Sequence[str] | None = None,
        min_visibility: float = 0.0,
        ignore_distractors: bool = True,
        distractor_classes: Sequence[int] = MOT_DISTRACTOR_CLASSES,
        skip_bad_images: bool = False,
    ) -> None:
        self.classes = [int(c) for c in classes]
        unknown = [c for c in self.classes if c not in MOT_CLASSES]
        if unknown or not self.classes or len(set(self.classes)) < len(self.classes):
            raise ValueError(f"classes must be distinct MOT class ids among {MOT_CLASSES}, got {list(classes)}")
        names = [MOT_CLASSES[c] for c in self.classes] if class_names is None else [str(n) for n in class_names]
        if len(names) != len(self.classes):
            raise ValueError(f"class_names {names} must name each of the classes {self.classes}")
        if not 0.0 <= min_visibility <= 1.0:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        self.min_visibility = float(min_visibility)
        self.ignore_distractors = ignore_distractors
        self.distractor_classes = [int(c) for c in distractor_classes if int(c) not in self.classes]

        split_dir = Path(data_dir) / split
        folders = self._sequence_folders(split_dir, sequences)
        self.sequences: dict[str, SequenceInfo] = {}
        records: list[FrameRecord] = []
        without_gt = []
        for folder in folders:
            info, frame_paths, frame_ids = self._read_sequence(folder)
            gt_path = folder / "gt" / "gt.txt"
            if not gt_path.is_file():
                without_gt.append(folder.name)
            info.first_identity = sum(s.num_identities for s in self.sequences.values())
            records += self._frame_records(info, frame_paths, frame_ids, gt_path, first_image_id=len(records))
            self.sequences[info.name] = info
        report_unannotated(split_dir, without_gt, len(folders), "gt/gt.txt")
        self.num_identities = sum(s.num_identities for s in self.sequences.values())
        super().__init__(
            records, names, transforms=transforms, skip_bad_images=skip_bad_images, source=f"MOT {split_dir}"
        )

    @staticmethod
    def _sequence_folders(split_dir: Path, sequences: Sequence[str] | None) -> list[Path]:
        """The sequence folders to read, sorted by name; errors describe the expected layout."""
        if not split_dir.is_dir():
            raise FileNotFoundError(
                f"MOT split folder not found: {split_dir}. Expected data_dir/{split_dir.name}/<SEQ>/ with "
                "seqinfo.ini, img1/000001.jpg ... and gt/gt.txt in each sequence folder."
            )
        folders = sorted(p for p in split_dir.iterdir() if p.is_dir())
        is_sequence = [(p / "seqinfo.ini").is_file() or (p / "img1").is_dir() for p in folders]
        others = [p.name for p, ok in zip(folders, is_sequence, strict=True) if not ok]
        folders = [p for p, ok in zip(folders, is_sequence, strict=True) if ok]
        if others:
            logger.warning(
                "%s: skipping %d folders with neither seqinfo.ini nor img1/: %s", split_dir, len(others), others
            )
        if sequences is not None:
            available = {p.name: p for p in folders}
            missing = [name for name in sequences if name not in available]
            if missing:
                raise ValueError(f"{split_dir}: no sequences {missing}; available: {sorted(available)}")
            folders = sorted(available[name] for name in set(sequences))
        if not folders:
            raise ValueError(f"{split_dir}: no sequence folders (each needs seqinfo.ini or img1/)")
        bases = [m.group(1) for m in map(_DETECTOR_COPY.match, (p.name for p in folders)) if m]
        if len(bases) > len(set(bases)):
            logger.warning(
                "%s: reading MOT17's per-detector copies of the same sequences (-DPM/-FRCNN/-SDP share frames and "
                "gt), so each frame is seen several times and each person has several identities; pass sequences= "
                "with one copy of each (e.g. the -SDP folders), as FairMOT does.",
                split_dir,
            )
        return folders

    @staticmethod
    def _read_sequence(folder: Path) -> tuple[SequenceInfo, list[Path], np.ndarray]:
        """A sequence's info, frame paths and frame numbers (from seqinfo.ini, defaults where it lacks a key)."""
        ini_path = folder / "seqinfo.ini"
        info = read_seqinfo(ini_path)
        missing = [name for key, name in SEQINFO_KEYS.items() if key not in info]
        if missing:
            logger.warning(
                "%s: %s; using imDir=img1, frameRate=30, the frames found in the image folder and each frame's own "
                "size where a value is missing.",
                ini_path,
                "file not found" if not ini_path.is_file() else f"no {', '.join(missing)}",
            )
        image_dir = folder / info.get("imdir", "img1")
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{folder}: frame folder {image_dir} not found")
        length = seqinfo_number(info, "seqlength", ini_path, int)
        width = seqinfo_number(info, "imwidth", ini_path, int)
        height = seqinfo_number(info, "imheight", ini_path, int)
        frame_rate = seqinfo_number(info, "framerate", ini_path, float) or _DEFAULT_FRAME_RATE
        if length is not None and "imext" in info:
            frame_ids = np.arange(1, length + 1, dtype=np.int64)
            frame_paths = [image_dir / f"{frame:06d}{info['imext']}" for frame in frame_ids]
        else:
            frame_paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            not_numbered = [p.name for p in frame_paths if not p.stem.isdigit()]
            if not_numbered:
                raise ValueError(f"{image_dir}: frame files must be numbered (000001.jpg ...), got {not_numbered[:3]}")
            order = np.argsort([int(p.stem) for p in frame_paths], kind="stable")
            frame_paths = [frame_paths[i] for i in order]
            frame_ids = np.array([int(p.stem) for p in frame_paths], dtype=np.int64)
            if len(np.unique(frame_ids)) < len(frame_ids):
                raise ValueError(f"{image_dir}: two frame files have the same number")
            if length is not None and length != len(frame_ids):
                logger.warning(
                    "%s: seqLength=%d but %d frames found; using the frames found", ini_path, length, len(frame_ids)
                )
        size = (height, width) if height is not None and width is not None else None
        return SequenceInfo(folder.name, len(frame_ids), frame_rate, size), frame_paths, frame_ids

    def _frame_records(
        self, info: SequenceInfo, frame_paths: list[Path], frame_ids: np.ndarray, gt_path: Path, first_image_id: int
    ) -> list[FrameRecord]:
        """One record per frame with its targets and ignore regions; fills ``info``'s identities."""
        rows = read_mot_gt(gt_path, frame_ids) if gt_path.is_file() else MOTRows.empty(extra_columns=2)
        classes, flags, visibility = rows.extra[:, 0].astype(np.int64), rows.scores, rows.extra[:, 1]
        of_target_class = np.isin(classes, self.classes) & (flags != 0)
        is_target = of_target_class & (visibility >= self.min_visibility)
        is_distractor = np.isin(classes, self.distractor_classes) | (of_target_class & ~is_target)
        is_ignore = is_distractor & self.ignore_distractors
        frames, raw_ids = rows.frames, rows.ids
        check_unique_identities(gt_path, frames[is_target], raw_ids[is_target], rows.lines[is_target].__getitem__)
        label_of_class = np.zeros(max(MOT_CLASSES) + 1, dtype=np.int64)  # ignore regions of other classes: 0
        label_of_class[self.classes] = np.arange(len(self.classes))
        return build_frame_records(
            info, frame_paths, frame_ids, first_image_id, frames, rows.boxes, label_of_class[classes], raw_ids,
            is_target, is_ignore,
        )  # fmt: skip
