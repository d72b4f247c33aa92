"""Numbers published in the papers, shown beside ours for reference and always marked as theirs.

They were measured on the papers' own data (fMoW sequences + a 150-sequence Google Earth test set for
TAMMs; Sentinel-2 for Sat-JEPA-Diff) with GPU-sized models: they are NOT comparable one-to-one with
our synthetic-world numbers. Sources: the TAMMs paper, tables 1 and 2; the Sat-JEPA-Diff caption-guided
model card, "Key Results".
"""

from __future__ import annotations

TAMMS_COLUMNS = ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "PSNR", "SSIM", "LPIPS", "TCS"]

# TAMMs table 1 (B-4, M, R-L, C-D, P, S, L, TCS); None = not applicable ("-" in the paper)
TAMMS_TABLE1 = {
    "RSICC-Former": [0.1285, 0.1930, 0.3489, 0.5344, None, None, None, None],
    "SITSCC": [0.2122, 0.2961, 0.4701, 0.6244, None, None, None, None],
    "Qwen2.5-VL-7B": [0.2089, 0.2845, 0.4612, 0.7156, None, None, None, None],
    "DeepSeek-VL2": [0.1920, 0.2382, 0.4603, 0.7362, None, None, None, None],
    "TEOChat": [0.2398, 0.3102, 0.4735, 0.8267, None, None, None, None],
    "Geosynth-Canny": [None, None, None, None, 11.3752, 0.1757, 0.7559, 0.2170],
    "MCVD": [None, None, None, None, 9.2208, 0.2098, 0.4970, 0.1930],
    "DiffusionSat": [None, None, None, None, 11.8878, 0.1520, 0.5225, 0.7624],
    "TAMMs": [0.2669, 0.3312, 0.4690, 0.9030, 12.0697, 0.1831, 0.4931, 0.9690],
}

# TAMMs table 2 (ablations)
TAMMS_TABLE2 = {
    "SFT only": [0.2134, 0.2901, 0.4634, 0.7523, None, None, None, 0.6842],
    "w/o PTE": [0.2387, 0.3089, 0.4721, 0.8234, None, None, None, 0.7456],
    "w/o CTP": [0.2445, 0.3156, 0.4678, 0.8567, None, None, None, 0.8234],
    "w/o Semantic Fusion": [None, None, None, None, 12.0642, 0.1596, 0.5198, 0.7911],
    "w/o Text Guidance": [None, None, None, None, 11.9655, 0.1709, 0.5065, 0.9410],
    "Base Control Block": [None, None, None, None, 11.8878, 0.1520, 0.5225, 0.7624],
    "TAMMs (Full)": [0.2669, 0.3312, 0.4690, 0.9030, 12.0697, 0.1831, 0.4931, 0.9690],
}

SATJEPA_COLUMNS = ["L1", "MSE", "PSNR", "SSIM", "GSSIM", "LPIPS", "FID"]

# Sat-JEPA-Diff (caption-guided model card, "Key Results")
SATJEPA_TABLE = {
    "Default": [0.0131, 0.0008, 37.52, 0.9361, 0.7858, 0.0708, 0.6959],
    "PredRNN": [0.0117, 0.0005, 38.38, 0.9476, 0.7836, 0.0726, 9.9720],
    "SimVP v2": [0.0131, 0.0006, 37.63, 0.9391, 0.7719, 0.0928, 18.7208],
    "SD 3.5": [0.0175, 0.0005, 32.98, 0.8398, 0.8711, 0.4528, 0.1533],
    "MCVD": [0.0314, 0.0031, 31.28, 0.8637, 0.7665, 0.1890, 0.1956],
    "Sat-JEPA-Diff (coarse RGB)": [0.0158, 0.0004, 33.81, 0.8672, 0.8984, 0.4449, 0.1475],
    "Sat-JEPA-Diff (Caption Guided)": [0.0267, 0.0025, 28.95, 0.7806, 0.8974, 0.3781, 0.2642],
}
