"""The shipped weights, converted to the one save format, give the outputs the old loaders gave.

The reference outputs were recorded before the conversion (tests/data/reference_outputs.md). A shipped folder
that is missing fails here: the weights are part of the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tamms.data.sequence import SitsSequence, from_days
from tamms.errors import ConfigError, MissingWeightsError, OutputExistsError
from tamms.models import MODEL_TYPES, load_pretrained
from tamms.registry import FORECAST_MODELS, load_detector, load_forecast_model
from tamms.utils import default_weights

DATA = Path(__file__).parent / "data"
REF = load_file(str(DATA / "reference_outputs.safetensors"))
META = json.loads((DATA / "reference_outputs.json").read_text())
# thread counts and library releases reorder float32 sums: through the describer's transformer that moved a text
# embedding by 1.2e-6 (transformers 5.24, torch 2.13). A change of weights or code moves them by orders more.
RTOL, ATOL = 1e-5, 1e-5
SHIPPED = {"describer": "tamms-describer", "describer-v2": "tamms-describer", "tamms": "tamms-sfci",
           "tamms-base-control": "tamms-sfci", "tamms-no-semantic": "tamms-sfci", "tamms-no-text": "tamms-sfci",
           "tamms-trend": "tamms-sfci",
           "simvp": "simvp", "convlstm": "convlstm", "change-trend": "change-trend",
           "satjepa": "satjepa-diff", "satjepa-caption": "satjepa-diff-caption", "siamese": "siamese",
           "siamese-real": "siamese", "unichange": "unichange"}


def _inputs():
    frames = REF["frames"].float()  # [4, 3, 64, 64]
    days = REF["days"]
    g = torch.Generator().manual_seed(META["noise_seed"])
    noise = torch.randn((1, 1, 3, 64, 64), generator=g)
    semantic = torch.randn((1, 192), generator=g)
    text_emb = torch.randn((1, 5, 192), generator=g)
    return frames, days, noise, semantic, text_emb


def _close(name: str, got: torch.Tensor) -> None:
    want = REF[name]
    assert got.shape == want.shape, name
    got, want = got.detach().double(), want.double()
    excess = ((got - want).abs() - (ATOL + RTOL * want.abs())).max().item()
    assert excess <= 0, f"{name}: max |difference| {(got - want).abs().max().item()}, over {ATOL} + {RTOL} * |value|"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_folder_is_in_the_one_format(name):
    folder = default_weights(name)
    # a missing folder fails (no skip): the package ships these weights
    assert (folder / "config.json").is_file(), f"shipped weights {folder} are missing"
    assert (folder / "model.safetensors").is_file(), f"shipped weights {folder} are missing"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == SHIPPED[name] and isinstance(cfg["config"], dict)
    if name not in ("simvp", "convlstm"):  # the baselines were shipped without a training record
        assert "training" in cfg, "the provenance of the shipped weights is kept in config.json"
    assert not list(folder.glob("ecm_stage*")) and not (folder / "training.json").exists()


def test_the_unet_is_stored_once():
    unets = [p.parent.name for p in default_weights("x").parent.rglob("diffusion_pytorch_model.safetensors")]
    assert unets == ["tamms-unet"]
    for name in ("tamms", "tamms-base-control", "tamms-no-semantic", "tamms-no-text", "tamms-trend"):
        cfg = json.loads((default_weights(name) / "config.json").read_text())["config"]
        assert cfg["unet"] == "../tamms-unet"


def test_describer_outputs_unchanged():
    from tamms.pipelines.describe import DescribePipeline

    frames, days, *_ = _inputs()
    pipe = DescribePipeline.from_pretrained(default_weights("describer"))  # v1, the forecaster's describer
    seq = SitsSequence(frames=frames.numpy(), dates=[from_days(float(x)) for x in days])
    out = pipe(seq, scene="a rural area with fields")
    assert out.texts[0] == META["describer_text"]
    _close("describer_semantic", out.semantic)
    _close("describer_text_embeddings", out.text_embeddings)
    enc = pipe.encode(seq, texts=["a new road was built"], scene=["fields"])
    _close("describer_encode_semantic", enc.semantic)


@pytest.mark.parametrize("name", ["tamms", "tamms-no-semantic", "tamms-no-text", "tamms-base-control", "simvp",
                                  "convlstm", "change-trend", "satjepa"])
def test_forecast_outputs_unchanged(name):
    frames, days, noise, semantic, text_emb = _inputs()
    history, hdays = frames[None, 1:4], days[None, 1:4]
    if name in ("simvp", "convlstm"):
        history = history[..., :32, :32]
    # the networks' numbers: the TAMMs models from pure noise (the sampler start saved with the weights is a
    # setting, chosen on validation, tested in test_forecast.py)
    model = load_forecast_model(name, strength=1.0) if name.startswith("tamms") else load_forecast_model(name)
    out = model.forecast(history, hdays, hdays[:, -1] + META["target_offset_days"], 1, META["num_inference_steps"],
                         noise=noise.clone(), generator=torch.Generator().manual_seed(META["generator_seed"]),
                         semantic=semantic, text_embeddings=text_emb, text_mask=torch.ones((1, 5), dtype=torch.bool))
    _close(f"forecast/{name}", out)


def test_satjepa_caption_outputs_unchanged():
    from tamms.models.jepa_caption import CaptionBatch, CaptionGuidedSatJEPA

    frames, days, noise, *_ = _inputs()
    model = CaptionGuidedSatJEPA.from_pretrained(default_weights("satjepa-caption"))
    caps = CaptionBatch(*META["satjepa_caption_captions"])
    out = model.forecast(frames[None, 3], torch.tensor([180.0]), captions=caps, num_inference_steps=2,
                         generator=torch.Generator().manual_seed(2), noise=noise[:, 0].clone(), current_days=days[3:4])
    _close("forecast/satjepa-caption", out)


def test_detector_outputs_unchanged():
    frames = _inputs()[0]
    for name in ("siamese", "siamese-real", "unichange"):
        _close(f"detect/{name}", load_detector(name).detect(frames[None, 0], frames[None, 3]).probability)
    det = load_detector("unichange", semantic=True)
    res = det.detect(frames[None, 0], frames[None, 3])
    assert torch.equal(res.semantic_before.to(torch.uint8), REF["detect/unichange-semantic-before"])
    assert torch.equal(res.semantic_after.to(torch.uint8), REF["detect/unichange-semantic-after"])
    assert det.last_responses == META["unichange_responses"]


def test_registry_names_every_forecaster():
    assert set(FORECAST_MODELS) == {"tamms", "tamms-no-semantic", "tamms-no-text", "tamms-base-control", "tamms-trend",
                                    "persistence", "linear-trend", "simvp", "convlstm", "change-trend", "satjepa",
                                    "satjepa-caption"}
    assert set(SHIPPED.values()) <= set(MODEL_TYPES)


# --- the format itself ---------------------------------------------------------------------------------


def test_save_load_roundtrip_refuses_overwrite_and_keeps_metadata(tmp_path):
    from tamms.models.baselines.forecast import SimVP, SimVPConfig

    net = SimVP(SimVPConfig(hidden=8, translator=16, translator_blocks=1))
    torch.nn.init.normal_(net.head.weight)  # not the zero init, so the roundtrip is tested on real values
    folder = net.save_pretrained(tmp_path / "m", metadata={"training": {"steps": 3}})
    again = load_pretrained(folder)
    assert isinstance(again, SimVP) and again.pretrained_metadata == {"training": {"steps": 3}}
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(OutputExistsError, match="--overwrite"):
        net.save_pretrained(folder)
    again.save_pretrained(folder, overwrite=True)  # metadata it was loaded with is written back
    assert json.loads((folder / "config.json").read_text())["training"] == {"steps": 3}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_float16_storage_upcasts_on_load(tmp_path):
    from tamms.models.change.siamese import SiameseChangeNet, SiameseConfig

    net = SiameseChangeNet(SiameseConfig(channels=(4, 8)))
    folder = net.save_pretrained(tmp_path / "s", dtype="float16")
    again = SiameseChangeNet.from_pretrained(folder)
    w = again.head.weight
    assert w.dtype == torch.float32 and torch.equal(w, net.head.weight.half().float())


def test_load_errors_name_the_fix(tmp_path):
    from tamms.models.baselines.forecast import ConvLSTM, ConvLSTMConfig, SimVP

    with pytest.raises(MissingWeightsError, match="tamms train"):
        SimVP.from_pretrained(tmp_path / "nothing")
    folder = ConvLSTM(ConvLSTMConfig(hidden=4, layers=1)).save_pretrained(tmp_path / "c")
    with pytest.raises(ConfigError, match="convlstm"):
        SimVP.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="forecast_convlstm.yaml"):
        ConvLSTM.from_pretrained(folder)


def test_sfci_saves_the_ecm_and_names_its_unet(tmp_path):
    from tamms.models.forecaster import ECMConfig, SFCIConfig, SFCIForecaster
    from tamms.models.unet import build_unet

    unet = build_unet({"block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                       "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "sample_size": 16,
                       "cross_attention_dim": 8, "attention_head_dim": 4, "norm_num_groups": 4})
    cfg = SFCIConfig(ecm=ECMConfig(semantic_dim=8, text_dim=8, time_embed_dim=8, semproc_hidden=8))
    f = SFCIForecaster.from_config(cfg, unet)
    f.save_pretrained(tmp_path / "a", unet_folder=tmp_path / "shared-unet")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["unet"] == "../shared-unet"
    assert set(load_file(str(tmp_path / "a" / "model.safetensors"))) == set(f.ecm.state_dict())
    loaded = SFCIForecaster.from_pretrained(tmp_path / "a")
    loaded.ecm.structural_only = True
    loaded.save_pretrained(tmp_path / "b")  # a second variant shares the same U-Net folder
    assert not (tmp_path / "b" / "unet").exists()
    b = SFCIForecaster.from_pretrained(tmp_path / "b")
    assert b.ecm.structural_only and b.unet_folder == (tmp_path / "shared-unet").resolve()
    (tmp_path / "shared-unet" / "config.json").unlink()
    with pytest.raises(MissingWeightsError, match="U-Net"):
        SFCIForecaster.from_pretrained(tmp_path / "b")


def test_shipped_trend_ecm_reads_change_trends_forecast():
    """tamms-trend: the structural ECM trained reading change-trend's forecast as a frame loads with that trend,
    and the frame matters: another forecast in its place (linear-trend's) gives another forecast. (change-trend
    forecasts no change for this input, so persistence's forecast would be the same frame.)"""
    frames, days, noise, *_ = _inputs()
    history, hdays = frames[None, 1:4], days[None, 1:4]
    assert load_forecast_model("tamms-trend").trend.name == "change-trend"
    model = load_forecast_model("tamms-trend", strength=1.0, start_from=None)  # from noise: no start forecast
    assert model.trend is not None and model.trend.name == "change-trend" and not model.uses_semantic
    target = hdays[:, -1] + 365.0
    out = model.forecast(history, hdays, target, 1, 2, noise=noise.clone())
    control = load_forecast_model("tamms-trend", strength=1.0, start_from=None, trend_from="linear-trend")
    assert control.trend.name == "linear-trend"
    other = control.forecast(history, hdays, target, 1, 2, noise=noise.clone())
    assert out.shape == (1, 1, 3, 64, 64) and (out - other).abs().mean() > 1e-3

