"""Published coefficients reproduce the papers' own derived numbers (papers.md §1–§5)."""

from __future__ import annotations

import pytest

from moescale.errors import MoescaleError
from moescale.laws import LAWS, get_law, zhao2025
from moescale.laws import holistic2026 as h26
from moescale.laws import ludziejewski2025 as joint

# papers.md §3, Table 4 of arXiv 2502.05172: (m, μ, n, ν) per E.
TABLE4 = {1: (30.3640, -0.1817, 53.9838, -0.1965), 2: (27.7982, -0.1780, 66.8401, -0.2065),
          4: (24.8462, -0.1731, 87.7022, -0.2192), 8: (21.8330, -0.1676, 119.9126, -0.2338),
          16: (19.0159, -0.1617, 167.5073, -0.2494), 32: (16.5424, -0.1557, 234.6726, -0.2652)}
# papers.md §1: C → (M in GFLOPs, D in B tokens).
HOLISTIC = {1e18: (0.2672, 3.7420), 3e18: (0.4856, 6.1775), 1e19: (0.9345, 10.7004),
            3e19: (1.6983, 17.6649), 1e20: (3.2681, 30.5985), 3e20: (5.9390, 50.5138)}


@pytest.mark.parametrize("E", sorted(TABLE4))
def test_joint_moe_table4_from_table3(E):
    got = joint.reduce_to_chinchilla(E)
    for g, want in zip(got, TABLE4[E], strict=True):
        assert g == pytest.approx(want, rel=0.005)  # papers.md: agrees within ~0.3 %


def test_comprehensive_law_optima():
    g, s = zhao2025.optimal_G_S()
    assert g == pytest.approx(6.78, abs=0.01) and s == pytest.approx(0.31, abs=0.01)
    assert zhao2025.optimal_activation_ratio(30e9) == pytest.approx(0.40, abs=0.01)
    assert zhao2025.optimal_activation_ratio(671e9) == pytest.approx(0.22, abs=0.01)


@pytest.mark.parametrize("compute", sorted(HOLISTIC))
def test_holistic_compute_to_flops_and_tokens_table(compute):
    m, d = HOLISTIC[compute]
    assert float(h26.optimal_flops_per_token(compute)) / 1e9 == pytest.approx(m, rel=5e-4)
    assert float(h26.optimal_tokens(compute)) / 1e9 == pytest.approx(d, rel=5e-4)
    assert float(get_law("holistic2026").predict("wan2026", {"C": compute})) == pytest.approx(
        float(h26.optimal_tokens(compute)))


def test_holistic_hyperparameter_laws_match_table4_exponents():
    e = h26.exponents()
    assert e["lr"] == pytest.approx(-0.160, abs=0.002)  # papers.md §1 (derived)
    assert e["batch"] == pytest.approx(0.263, abs=0.003)
    assert float(h26.learning_rate(1e18)) == pytest.approx(1.2e-3, rel=0.05)
    assert float(h26.batch_sequences(3e20)) == pytest.approx(288, rel=0.05)


def test_chinchilla_presets_and_closed_form():
    law = get_law("chinchilla")
    p = law.preset("hoffmann2022").values
    # Chinchilla (70B, 1.4T) at the published fit: E + A/N^α + B/D^β.
    want = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    assert float(law.predict(p, {"N": 70e9, "D": 1.4e12})) == pytest.approx(want, rel=1e-12)
    from moescale.laws.chinchilla import compute_optimal

    n, d = compute_optimal(5.76e23, p)
    assert 6 * n * d == pytest.approx(5.76e23)
    eps = 1e-3  # optimum: nudging N along the isoFLOP curve raises the loss
    for f in (1 - eps, 1 + eps):
        assert law.predict(p, {"N": n * f, "D": d / f}) > law.predict(p, {"N": n, "D": d})


def test_registry_errors():
    with pytest.raises(MoescaleError, match="unknown law 'x'"):
        get_law("x")
    with pytest.raises(MoescaleError, match="no preset 'y'"):
        get_law("chinchilla").preset("y")
    with pytest.raises(MoescaleError, match="needs variable D"):
        get_law("chinchilla").predict("hoffmann2022", {"N": 1e9})
    with pytest.raises(MoescaleError, match="must be positive"):
        get_law("chinchilla").predict("hoffmann2022", {"N": -1, "D": 1e9})
    assert all(get_law(name).describe()["citation"] for name in LAWS)
