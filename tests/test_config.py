import pytest
from paddleocr.tools.infer import utility

from ocrhub import models
from ocrhub.config import (
    FIELDS,
    OcrConfig,
    cpu_flags,
    env_table,
    load_config,
    load_server_config,
    usable_cores,
    usable_memory_mb,
)
from ocrhub.errors import ConfigError
from ocrhub.serving.layout import default_layout, warn_if_memory_short

# Our defaults differ from paddleocr's argument defaults only here, on purpose (see ocrhub.config).
DELIBERATE = {"use_gpu": False, "enable_mkldnn": True, "use_angle_cls": True, "cpu_threads": 0}
OURS_ONLY = {
    "model_set",
    "inference_dir",
    "max_images",
    "max_image_pixels",
    "max_request_pixels",
    "request_timeout",
    "max_line_ratio",
    "data_dir",
    "max_pages",
    "engine",
    "cls_mode",
    "det_model_dir",
    "rec_model_dir",
    "cls_model_dir",
    "rec_char_dict_path",
}


def test_defaults_are_paddleocr_defaults():
    theirs = vars(utility.init_args().parse_args([]))
    for name in FIELDS.keys() - OURS_ONLY:
        ours = getattr(OcrConfig, name)
        assert ours == DELIBERATE.get(name, theirs[name]), name
    assert (
        OcrConfig.det_db_box_thresh,
        OcrConfig.det_db_unclip_ratio,
        OcrConfig.rec_batch_num,
        OcrConfig.drop_score,
        OcrConfig.det_limit_side_len,
        OcrConfig.det_limit_type,
    ) == (0.6, 1.5, 6, 0.5, 960, "max")


def test_model_set_fills_model_folders(tmp_path):
    config = load_config({"model_set": "server", "inference_dir": str(tmp_path)}, environ={})
    assert config.model_path("det") == tmp_path / "ch_PP-OCRv4_det_server_infer"
    assert config.model_path("cls") == tmp_path / "ch_ppocr_mobile_v2.0_cls_infer"


def test_init_args_then_environment_win():
    config = load_config(
        {"det_db_box_thresh": 0.5, "rec_batch_num": 8, "version": "1.0.0"},
        environ={"OCR_REC_BATCH_NUM": "12", "OCR_ENABLE_MKLDNN": "false", "OCR_DET_MODEL_DIR": "/models/det"},
    )
    assert config.det_db_box_thresh == 0.5
    assert config.rec_batch_num == 12
    assert config.enable_mkldnn is False
    assert str(config.model_path("det")) == "/models/det"
    assert config.rec_model_dir == "ch_PP-OCRv4_rec_infer"


@pytest.mark.parametrize(
    "init_args, environ, message",
    [
        ({"model_set": "huge"}, {}, "unknown model set 'huge'"),
        ({"det_db_thres": 0.3}, {}, "unknown init_arg 'det_db_thres'"),
        ({}, {"OCR_CPU_THREADS": "two"}, "OCR_CPU_THREADS: expected int, got 'two'"),
        ({}, {"OCR_USE_GPU": "maybe"}, "OCR_USE_GPU: expected true/false"),
        ({"rec_batch_num": [6]}, {}, r"init_arg rec_batch_num: expected int, got \[6\]"),
        ({"det_limit_type": "both"}, {}, "det_limit_type must be 'max' or 'min'"),
    ],
)
def test_bad_values_are_named(init_args, environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(init_args, environ=environ)


def test_every_field_has_an_environment_variable():
    names = [name for name, _ in env_table()]
    assert "OCR_MODEL_SET" in names and "OCR_DET_DB_BOX_THRESH" in names
    assert len(names) == len(set(names)) > len(FIELDS)


def test_every_environment_variable_is_documented():
    readme = (models.DEFAULT_INFERENCE_DIR.parent / "README.md").read_text()
    missing = [name for name, _ in env_table() if name not in readme]
    assert not missing, f"README lacks {missing}"


def cgroup(folder, files: dict[str, str]):
    """A stand-in for /sys/fs/cgroup holding ``files`` (path: text)."""
    for name, text in files.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(
    "files, expected",
    [
        ({}, 8),  # no cgroup files: the affinity
        ({"cpu.max": "max 100000\n"}, 8),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 cores' worth: 2 threads keep it busy
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "1600000 100000\n"}, 8),  # more than the affinity allows
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),
        ({"cpu.max": "garbage\n"}, 8),
    ],
)
def test_usable_cores_counts_a_containers_cpu_limit(tmp_path, monkeypatch, files, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(8)))
    assert usable_cores(cgroup(tmp_path, files)) == expected


@pytest.mark.parametrize(
    "cores, environ, workers, solo",
    [
        (2, {}, 2, True),  # OpenVINO: one worker per core, and a solo worker with both
        (1, {}, 1, False),
        (2, {"OCR_ENGINE": "openvino-bf16"}, 2, True),
        (2, {"OCR_ENGINE": "onednn"}, 2, False),
        (2, {"OCR_WORKERS": "1"}, 1, False),  # an explicit count is the whole layout
        (2, {"OCR_WORKERS": "2", "OCR_SOLO_WORKER": "true"}, 2, True),
        (4, {"OCR_SOLO_WORKER": "false"}, 4, False),
        (4, {"OCR_USE_GPU": "true"}, 1, False),
    ],
)
def test_default_layout(monkeypatch, cores, environ, workers, solo):
    monkeypatch.setattr("ocrhub.serving.layout.usable_cores", lambda: cores)
    monkeypatch.setattr("ocrhub.serving.layout.usable_memory_mb", lambda: 64 * 1024)
    server = default_layout(load_server_config(environ), load_config({}, environ=environ))
    assert (server.workers, server.solo) == (workers, solo)
    assert default_layout(server, load_config({}, environ=environ)) == server  # resolved once and for all


@pytest.mark.parametrize(
    "files, expected",
    [
        ({}, 16384),  # no cgroup files: the machine's memory
        ({"memory.max": "max\n"}, 16384),
        ({"memory.max": "4294967296\n"}, 4096),  # docker run -m 4g
        ({"memory/memory.limit_in_bytes": "2147483648\n"}, 2048),  # cgroup v1
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 16384),  # v1's "no limit"
        ({"memory.max": "garbage\n"}, 16384),
    ],
)
def test_usable_memory_counts_a_containers_memory_limit(tmp_path, monkeypatch, files, expected):
    monkeypatch.setattr("os.sysconf", {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 4 * 2**20}.get)  # 16 GiB
    assert usable_memory_mb(cgroup(tmp_path, files)) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    core = "processor\t: {}\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
    cpuinfo.write_text(core.format(0) + "\n" + core.format(1))
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") is None
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # arm64 says Features
    assert cpu_flags(cpuinfo) is None


ONEDNN = {"OCR_ENGINE": "onednn"}


@pytest.mark.parametrize(
    "cores, memory_mb, environ, workers, solo, worker_mb",
    [
        (2, 16384, {}, 2, True, 2048),  # room for the whole default layout
        (2, 8192, {}, 2, True, 2014),  # three workers fit, each limited to its share
        (2, 6144, {}, 2, True, 1332),  # an OpenVINO worker needs 768 MB at least: the three still fit
        (2, 4096, {}, 2, False, 1230),  # the solo worker goes first
        (2, 3072, {}, 1, False, 1948),  # then shared workers: one worker × 2 threads
        (2, 2048, {}, 1, False, 924),
        (2, 1024, {}, 1, False, 768),  # never below a warm worker's needs (the launcher warns)
        (8, 8192, {}, 4, False, 1383),  # a divisor of the cores: workers keep whole cores
        (2, 4096, {**ONEDNN}, 1, False, 2048),  # a Paddle worker needs 1536 MB: one worker × 2 threads, as Compose sets
        (2, 2048, {**ONEDNN}, 1, False, 1536),
        (2, 4096, {"OCR_WORKERS": "2", **ONEDNN}, 2, False, 1536),  # an explicit count stays
        (2, 4096, {"OCR_WORKER_MAX_MEMORY_MB": "0"}, 2, True, 0),  # never replaced: nothing to fit
        (2, 4096, {"OCR_WORKER_MAX_MEMORY_MB": "1024"}, 2, False, 1024),  # a lower limit is kept
    ],
)
def test_default_layout_fits_the_memory(monkeypatch, cores, memory_mb, environ, workers, solo, worker_mb):
    monkeypatch.setattr("ocrhub.serving.layout.usable_cores", lambda: cores)
    monkeypatch.setattr("ocrhub.serving.layout.usable_memory_mb", lambda: memory_mb)
    server = default_layout(load_server_config(environ), load_config({}, environ=environ))
    assert (server.workers, server.solo, server.worker_max_memory_mb) == (workers, solo, worker_mb)
    assert default_layout(server, load_config({}, environ=environ)) == server


def test_a_layout_set_by_hand_over_the_memory_is_warned_of(monkeypatch, caplog):
    monkeypatch.setattr("ocrhub.serving.layout.usable_cores", lambda: 2)
    monkeypatch.setattr("ocrhub.serving.layout.usable_memory_mb", lambda: 4096)
    environ = {"OCR_WORKERS": "2", **ONEDNN}
    warn_if_memory_short(default_layout(load_server_config(environ), load_config({}, environ=environ)))
    assert "2 worker(s) of OCR_WORKER_MAX_MEMORY_MB=1536 may take 4708 MB, more than the 4096 MB" in caplog.text
    caplog.clear()
    warn_if_memory_short(default_layout(load_server_config({}), load_config({}, environ={})))
    assert not caplog.text  # the default layout fits


def test_solo_worker_choices():
    with pytest.raises(ConfigError, match="solo_worker must be auto, true or false, got 'yes'"):
        load_server_config({"OCR_SOLO_WORKER": "yes"})
