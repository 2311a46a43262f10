"""The LightningDataModule: builds train/val/test datasets, transforms and loaders from config."""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader

from ..structures import KeypointLayout
from .coco import COCODataset
from .coco_keypoints import COCO_PERSON_KEYPOINTS, COCOKeypointsDataset
from .collate import collate_detection
from .common import DetectionDataset
from .crowdhuman import CrowdHumanDataset
from .inference import InferenceDataset
from .kitti_tracking import KITTITrackingDataset
from .mot import MOTDataset
from .synthetic import SHAPE_NAMES, generate_synthetic_dataset
from .synthetic_keypoints import generate_synthetic_keypoints
from .synthetic_tracking import generate_tracking_sequences
from .transforms import DetectionTransform, build_transforms
from .voc import VOCDataset
from .yolo import YOLODataset

__all__ = ["DetectionDataModule", "DATASETS", "EVERY_FILE", "KEYPOINT_DATASETS", "TRACKING_DATASETS"]

log = logging.getLogger(__name__)

DATASETS: dict[str, type[DetectionDataset]] = {
    "coco": COCODataset,
    "synthetic": COCODataset,  # generated on first use, then read as COCO
    "coco_keypoints": COCOKeypointsDataset,
    "synthetic_keypoints": COCOKeypointsDataset,  # generated on first use, then read as COCO keypoints
    "voc": VOCDataset,
    "yolo": YOLODataset,
    "crowdhuman": CrowdHumanDataset,
    "mot": MOTDataset,
    "kitti_tracking": KITTITrackingDataset,
    "synthetic_tracking": MOTDataset,  # generated on first use, then read as MOTChallenge sequences
}
# The datasets whose objects carry identities (track_ids) across the frames of sequences.
TRACKING_DATASETS = ("mot", "kitti_tracking", "synthetic_tracking")
# The datasets whose objects carry joints (keypoints) and a keypoint layout.
KEYPOINT_DATASETS = ("coco_keypoints", "synthetic_keypoints")


# The generated datasets: their generator, a path that exists once one is complete, and the
# version of what the generator draws (raised when the same arguments give other data, so that a
# folder written by an older version is not read as a new one).
GENERATORS: dict[str, tuple[Callable[..., Path], str, int]] = {
    "synthetic": (generate_synthetic_dataset, "annotations", 1),
    "synthetic_tracking": (generate_tracking_sequences, "train", 3),
    "synthetic_keypoints": (generate_synthetic_keypoints, "annotations", 1),
}
# The split name that reads every annotation file of a dataset without split lists (VOC exports of
# labelme, CVAT, Roboflow: the reader's split=None; a null split disables the stage instead).
EVERY_FILE = "*"
READERS_OF_EVERY_FILE = ("voc",)
GENERATED_RECORD = "generated.json"  # in a generated folder: {"dataset", "version", "arguments"}
SYNTHETIC_TRACKING_CLASSES = ("object",)
SYNTHETIC_KEYPOINTS_CLASSES = ("person",)  # one category, with COCO_PERSON_KEYPOINTS's joints


def _generator_arguments(generate: Callable[..., Path], arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` completed with the generator's defaults, through JSON (tuples equal lists)."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(generate).parameters.items()
        if parameter.default is not inspect.Parameter.empty and name != "overwrite"
    }
    return json.loads(json.dumps({**defaults, **arguments}, default=str))


def _check_generated_record(data_dir: Path, expected: dict[str, Any], generate: Callable[..., Path]) -> dict[str, Any]:
    """The generator arguments of the generated folder ``data_dir`` that differ from ``expected``'s,
    ``{name: value it was generated with}`` (defaults filled in on both sides).

    A folder of another dataset or generator version holds other data: FileExistsError. Folders
    without ``generated.json`` were written before records were kept, by version 1 of the
    generators: they are reused with a warning where ``expected`` is version 1 and refused otherwise.
    """
    path = data_dir / GENERATED_RECORD
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found = None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is unreadable ({error}); delete {data_dir} to generate it again") from error
    if found is None and expected["version"] == 1:
        log.warning("%s has no %s; reusing it without checking how it was generated", data_dir, GENERATED_RECORD)
        return {}
    if found is None or (found.get("dataset"), found.get("version")) != (expected["dataset"], expected["version"]):
        described = "no record, so an older version" if found is None else f"it has {found}"
        raise FileExistsError(
            f"{data_dir} holds a generated {expected['dataset']} dataset that this version would not generate "
            f"({described}; this config: {expected}); delete the folder to generate it again, or choose "
            "another data_dir"
        )
    generated = _generator_arguments(generate, found.get("arguments") or {})
    configured = _generator_arguments(generate, expected["arguments"])
    return {name: value for name, value in generated.items() if configured.get(name) != value}


def _overrides(arguments: dict[str, Any]) -> str:
    """The command-line options that set ``arguments`` of the ``synthetic`` generator (no spaces in
    a value, so that each is one shell word)."""
    values = {k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for k, v in arguments.items()}
    return " ".join(f"--data.synthetic.{name}={value}" for name, value in values.items())


class DetectionDataModule(L.LightningDataModule):
    """Datasets and loaders for detection.

    Args:
        dataset: ``coco``, ``voc``, ``yolo``, ``crowdhuman``, ``synthetic`` (COCO-format shapes
            generated into ``data_dir`` on first use, see ``synthetic``), for tracking ``mot``
            (MOTChallenge sequences), ``kitti_tracking`` or ``synthetic_tracking`` (sequences
            generated in MOTChallenge layout on first use; splits ``train`` and ``val``), or for
            keypoints ``coco_keypoints`` (``person_keypoints_{split}.json``) or
            ``synthetic_keypoints`` (COCO-format people with COCO's 17 joints, generated on first
            use; splits ``train`` and ``val``).
        data_dir: dataset root (the layout each reader expects is in its docstring).
        train_split, val_split, test_split: split names; None disables a split; ``"*"`` reads every
            annotation file (``voc`` exports without ``ImageSets``, e.g. labelme, CVAT, Roboflow).
        dataset_params: extra reader arguments, e.g. ``{names: [...]}`` for YOLO,
            ``{box_type: visible}`` for CrowdHuman.
        input_size: square training/evaluation input side in pixels (a multiple of 32).
        train_transforms: preset (``centernet``, ``light``, ``val``) or a list of Albumentations
            specs ``[{name: HorizontalFlip, p: 0.5}, ...]``.
        val_transforms: the same for validation/test/predict (default: letterbox ``val``).
        batch_size, val_batch_size: images per batch (val defaults to batch_size).
        num_workers: DataLoader worker processes.
        skip_bad_images: log and skip unreadable images instead of failing.
        synthetic: arguments of the generator of ``dataset: synthetic`` (``generate_synthetic_dataset``),
            ``synthetic_tracking`` (``generate_tracking_sequences``) or ``synthetic_keypoints``
            (``generate_synthetic_keypoints``).
        predict_dir: folder of images for ``centernet predict`` (default: the val split).
        class_names: the class names, when no annotations should be read for them (e.g.
            ``centernet predict`` on a folder of images with only a checkpoint).
        keypoint_layout: the joints (``{names, skeleton}``) of a keypoint model, for data that has
            none of its own (``centernet validate/predict --ckpt_path`` of a keypoint checkpoint
            fills it from the checkpoint); a keypoint dataset whose joints differ is refused.
    """

    def __init__(
        self,
        dataset: str = "coco",
        data_dir: str = "data/coco",
        train_split: str | None = "train",
        val_split: str | None = "val",
        test_split: str | None = None,
        dataset_params: dict[str, Any] | None = None,
        input_size: int = 512,
        train_transforms: str | list[dict[str, Any]] = "centernet",
        val_transforms: str | list[dict[str, Any]] = "val",
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        skip_bad_images: bool = False,
        synthetic: dict[str, Any] | None = None,
        predict_dir: str | None = None,
        class_names: list[str] | None = None,
        keypoint_layout: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {dataset!r}; valid names: {sorted(DATASETS)}")
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        for key, split in (("train_split", train_split), ("val_split", val_split), ("test_split", test_split)):
            if split == EVERY_FILE and dataset not in READERS_OF_EVERY_FILE:
                raise ValueError(
                    f"data.{key} {EVERY_FILE!r} (every annotation file) is for the datasets "
                    f"{list(READERS_OF_EVERY_FILE)}; {dataset} needs a split name"
                )
        # class_names and keypoint_layout are the model's hyperparameters (linked from here); logging
        # both would clash.
        self.save_hyperparameters(ignore=["class_names", "keypoint_layout"])
        self._given_keypoint_layout = KeypointLayout.from_dict(keypoint_layout) if keypoint_layout else None
        self._given_class_names = list(class_names) if class_names else None
        self.datasets: dict[str, DetectionDataset] = {}
        # Generator arguments a reused generated folder was made with, where the config differs.
        self._generated_otherwise: dict[str, Any] = {}

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> DetectionDataModule:
        """The data module of a config file: a fit config's ``data`` section (plain or
        ``init_args``) or a file holding the section alone; ``overrides`` replace its entries.

        ValueError naming the file for YAML that is no mapping, or an entry the data module does
        not take (listing the ones it does).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Data config not found: {path}")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from None
        if isinstance(config, dict) and "data" not in config and {"model", "trainer"} & set(config):
            raise ValueError(f"{path}: a fit config without a data section")
        section = config.get("data", config) if isinstance(config, dict) else None
        if isinstance(section, dict) and isinstance(section.get("init_args"), dict):
            section = section["init_args"]
        if not isinstance(section, dict):
            raise ValueError(f"{path}: expected a data config (a mapping, or a fit config with a data section)")
        arguments = {**section, **overrides}
        accepted = inspect.signature(cls.__init__).parameters
        unknown = sorted(key for key in arguments if key not in accepted)
        if unknown:
            valid = ", ".join(name for name in accepted if name != "self")
            raise ValueError(f"{path}: unknown data setting(s) {unknown}; valid: {valid}")
        return cls(**arguments)

    # ------------------------------------------------------------------------------ datasets
    def prepare_data(self) -> None:
        """Generate the synthetic dataset once (rank 0 only, as Lightning calls it).

        It is written to a temporary sibling folder and renamed into place, so an interrupted or
        concurrent generation never leaves a half-written dataset behind. A ``generated.json``
        beside it records the generator's version and arguments; a folder of another generator
        version is refused rather than silently reused. One made by this version with other
        arguments is kept for :meth:`setup`: ``fit`` refuses it (training data must be what the
        config says), evaluation reuses it (its validation split is the one trained against).
        """
        splits = (self.hparams.train_split, self.hparams.val_split, self.hparams.test_split)
        if self.hparams.dataset not in GENERATORS or all(split is None for split in splits):
            return  # nothing to read from it (predict_dir, or class names given): nothing to generate
        generate, marker, version = GENERATORS[self.hparams.dataset]
        data_dir = Path(self.hparams.data_dir)
        record = {"dataset": self.hparams.dataset, "version": version, "arguments": dict(self.hparams.synthetic or {})}
        if (data_dir / marker).is_dir():
            self._generated_otherwise = _check_generated_record(data_dir, record, generate)
            return
        if data_dir.exists() and any(data_dir.iterdir()):
            raise FileExistsError(f"{data_dir} is not empty and holds no synthetic dataset; choose another data_dir")
        log.info("Generating the %s dataset in %s", self.hparams.dataset, data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}-", dir=data_dir.parent))
        try:
            generate(temporary, overwrite=True, **(self.hparams.synthetic or {}))
            (temporary / GENERATED_RECORD).write_text(json.dumps(record, default=str, indent=1), encoding="utf-8")
            if data_dir.exists():
                data_dir.rmdir()  # empty, checked above
            temporary.rename(data_dir)
        except OSError:
            if not (data_dir / marker).is_dir():  # another process finished first otherwise
                raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def _check_generated_arguments(self, stage: str) -> None:
        """Refuse to ``fit`` on a generated folder made with other arguments (naming the options
        that would match it); let evaluation reuse it, saying so."""
        differences = self._generated_otherwise
        if not differences:
            return
        data_dir = self.hparams.data_dir
        if stage == "fit":
            raise FileExistsError(
                f"{data_dir} was generated with other synthetic settings than this config's: to train on it, "
                f"repeat {_overrides(differences)}; to generate new data, delete the folder or choose another "
                "data_dir"
            )
        log.info("Evaluating on %s as generated (with %s; the configured values differ)", data_dir, differences)

    def _transforms(self, train: bool, keypoint_layout: KeypointLayout | None = None) -> DetectionTransform:
        """The training or evaluation transform of the config (swapping ``keypoint_layout``'s left and
        right joints where it mirrors)."""
        spec = self.hparams.train_transforms if train else self.hparams.val_transforms
        return build_transforms(spec, self.hparams.input_size, keypoint_layout=keypoint_layout)

    def make_dataset(self, split: str, train: bool) -> DetectionDataset:
        """Build the reader for ``split`` with the training or evaluation transform."""
        self.prepare_data()
        params = dict(self.hparams.dataset_params or {})
        if self.hparams.dataset == "synthetic_tracking":
            params.setdefault("class_names", SYNTHETIC_TRACKING_CLASSES)
        if self.hparams.skip_bad_images:
            params["skip_bad_images"] = True
        reader_split = None if split == EVERY_FILE else split  # the reader's None: every annotation file
        dataset = DATASETS[self.hparams.dataset](self.hparams.data_dir, reader_split, **params)
        # The transform once the reader is read: a keypoint reader's layout tells its flips which joints to swap.
        dataset.transforms = self._transforms(train, getattr(dataset, "keypoint_layout", None))
        return dataset

    def _dataset(self, stage: str) -> DetectionDataset:
        if stage not in self.datasets:
            split = {"train": self.hparams.train_split, "val": self.hparams.val_split, "test": self.hparams.test_split}
            if stage == "predict":
                if self.hparams.predict_dir:
                    self.datasets[stage] = InferenceDataset(
                        self.hparams.predict_dir,
                        transforms=self._transforms(False),
                        skip_bad_images=self.hparams.skip_bad_images,
                    )
                    return self.datasets[stage]
                stage_split = split["val"]
            else:
                stage_split = split[stage]
            if stage_split is None:
                key = "val_split is null; set data.predict_dir" if stage == "predict" else f"{stage}_split is null"
                raise ValueError(f"No {stage} split configured (data.{key})")
            self.datasets[stage] = self.make_dataset(stage_split, train=stage == "train")
        return self.datasets[stage]

    def setup(self, stage: str) -> None:
        self.prepare_data()
        self._check_generated_arguments(stage)
        needed = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"]}[stage]
        for name in needed:
            if name == "val" and self.hparams.val_split is None:
                continue
            self._dataset(name)

    @cached_property
    def class_names(self) -> list[str]:
        """Names of the contiguous labels: given, known (synthetic), or read from the annotations."""
        if self._given_class_names:
            return list(self._given_class_names)
        if self.hparams.dataset == "synthetic":
            num_classes = (self.hparams.synthetic or {}).get("num_classes", 3)
            return list(SHAPE_NAMES[:num_classes])
        if self.hparams.dataset == "synthetic_tracking":
            return list(SYNTHETIC_TRACKING_CLASSES)
        if self.hparams.dataset == "synthetic_keypoints":
            return list(SYNTHETIC_KEYPOINTS_CLASSES)
        dataset = self._readable_split_dataset()
        if dataset is None:
            raise ValueError("No split is configured to read class names from: set data.class_names or a split")
        return dataset.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def num_identities(self) -> int | None:
        """Identities of the training split (the re-ID classifier's size). None when unknown: a
        detection dataset (its objects have no track ids) or no training split; a FairMOT
        checkpoint then sizes its own classifier. Nothing is read for a detection dataset."""
        if self.hparams.dataset not in TRACKING_DATASETS or self.hparams.train_split is None:
            return None
        return int(getattr(self._dataset("train"), "num_identities", 0))

    @cached_property
    def category_ids(self) -> list[int]:
        """The dataset's id of each contiguous label: COCO category ids for COCO-format data
        (synthetic and keypoint datasets included), the label itself for the other formats (kept in
        checkpoints, so that predictions can be written with the dataset's ids)."""
        if self.hparams.dataset in ("coco", "synthetic", *KEYPOINT_DATASETS):
            dataset = self._readable_split_dataset()
            if dataset is not None:
                return list(dataset.label_to_category_id)
        return list(range(self.num_classes))

    @cached_property
    def keypoint_layout(self) -> dict[str, Any] | None:
        """The joints of a keypoint dataset (:meth:`KeypointLayout.to_dict`): COCO's 17 for
        ``synthetic_keypoints`` (nothing is generated to know them), else read from the annotations;
        for other datasets (or when no split is configured to read them from) the given
        ``keypoint_layout``, else None. ValueError when the data's joints differ from the given ones."""
        given = self._given_keypoint_layout
        found: KeypointLayout | None = None
        if self.hparams.dataset == "synthetic_keypoints":
            found = COCO_PERSON_KEYPOINTS
        elif self.hparams.dataset in KEYPOINT_DATASETS:
            dataset = self._readable_split_dataset()
            found = None if dataset is None else dataset.keypoint_layout
        if found is not None and given is not None and found.names != given.names:
            raise ValueError(
                f"The data's joints {list(found.names)} differ from the model's {list(given.names)}: use a checkpoint "
                "trained on joints of these names, in this order"
            )
        layout = found or given
        return None if layout is None else layout.to_dict()

    def _readable_split_dataset(self) -> DetectionDataset | None:
        """The first configured split (train, val, test) whose annotations can be read, for the class
        names and ids; None when no split is configured. A missing split is passed over when a later
        one reads (``validate`` on a copy holding only the validation split); when none reads, the
        first split's FileNotFoundError is raised."""
        missing: FileNotFoundError | None = None
        for stage, split in (("train", "train_split"), ("val", "val_split"), ("test", "test_split")):
            if self.hparams[split] is None:
                continue
            try:
                return self._dataset(stage)
            except FileNotFoundError as error:
                missing = missing or error
        if missing is not None:
            raise missing
        return None

    # ------------------------------------------------------------------------------ loaders
    def _loader(self, stage: str, shuffle: bool, batch_size: int) -> DataLoader:
        dataset = self._dataset(stage)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_detection,
            pin_memory=torch.cuda.is_available(),
            drop_last=shuffle and len(dataset) > batch_size,  # no 1-image BatchNorm batch
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader | Sequence:
        if self.hparams.val_split is None:
            return []
        return self._loader("val", False, self.hparams.val_batch_size or self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.hparams.val_batch_size or self.hparams.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", False, self.hparams.val_batch_size or self.hparams.batch_size)
