"""docs/glossary.md defines every term the course uses: a maintained list of terms (TERMS, below) says how
each shows up in a notebook's markdown, and a notebook that uses one the glossary lacks fails the test. The
glossary is alphabetical, each entry with an anchor, a definition and the notebook where the term is first
defined; and every notebook's title cell links it.

To add a term: an entry in docs/glossary.md (`<a id="anchor"></a>**Term** · symbol · first defined in
[NN](../notebooks/NN_name.ipynb)`, then its definition), and a line in TERMS with the patterns that find it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossary.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
TITLE_LINK = "](../docs/glossary.md)"

# glossary anchor -> regular expressions that find the term in a notebook's markdown (raw text, math included)
TERMS: dict[str, list[str]] = {
    "advantage": [r"\badvantages?\b"],
    "aepo": [r"`aepo\b", r"\baepo\.py", r"\bAEPO\b"],
    "aepo-agentic": [r"aepo_agentic", r"\bagentic AEPO\b"],
    "aggregation": [r"seq-mean-token-mean", r"\btoken-mean\b", r"\baggregation\b"],
    "attention-entropy": [r"\battention entropy\b"],
    "auc": [r"\bAUCs?\b", r"\bROC\b"],
    "bandit": [r"\bbandit\b"],
    "batch-entropy-change": [r"batch_entropy_change"],
    "batch-norm": [r"\bbatch norm\b", r"\bgroup norm\b", r"BatchNorm", r"GroupNorm"],
    "best-of-n": [r"\bbest-of-N\b"],
    "clip-cov": [r"\bClip-Cov\b", r"`clip_cov"],
    "clip-fraction": [r"clip_frac"],
    "clip-higher": [r"(?i)\bclip[- ]higher\b"],
    "countdown": [r"\bcountdown\b"],
    "countdown-steps": [r"countdown_steps"],
    "countdown-tool": [r"countdown_tool"],
    "cov-mean": [r"cov_mean", r"cov_top"],
    "cov-t": [r"\\mathrm\{Cov\}_t", r"\bCov_t\b"],
    "cure": [r"\bCURE\b"],
    "dapo": [r"\bDAPO\b"],
    "deyo": [r"\bDeYO\b"],
    "dr-grpo": [r"\bDr\. GRPO\b", r"dr_grpo"],
    "dual-clip": [r"\bdual-clip\b"],
    "dynamic-sampling": [r"\bdynamic sampling\b"],
    "effective-sample-size": [r"\bESS\b", r"effective sample size"],
    "empg": [r"\bEMPG\b"],
    "entropic-overload": [r"entropic overload|entropically overloaded"],
    "entropy-adv": [r"entropy_adv", r"entropy-based advantage"],
    "entropy-bonus": [r"\bentropy bonus\b", r"entropy_bonus"],
    "entropy-collapse": [r"(?i)\bentropy collapse\b"],
    "entropy-covariance-law": [r"entropy-covariance", r"covariance law"],
    "entropy-full-vocabulary": [r"full-vocabulary"],
    "entropy-guided-attention": [r"(?i)entropy-guided attention"],
    "entropy-kept": [r"entropy kept"],
    "entropy-nucleus": [r"H\^p", r"entropy of the top-p nucleus|nucleus entropy"],
    "entropy-performance-law": [r"entropy-performance law", r"R = [-−]a"],
    "entropy-sequence": [r"mean token entropy", r"\\bar H_i"],
    "entropy-token": [r"token entropy|token's entropy|per-token entropy", r"nats per token"],
    "entropy-truncated": [r"top-\}?50", r"top-10 truncated"],
    "epf": [r"\bePF\b"],
    "epo": [r"`epo\b", r"\bepo\.py", r"\bEPO\b"],
    "equal-budget": [r"tokens_sampled", r"(?i)equal[- ]budget"],
    "ettrl": [r"\bETTRL\b"],
    "evol-rl": [r"\bEVOL-RL\b"],
    "fork-token": [r"\bforks?\b", r"fork tokens?"],
    "group-normalisation": [r"group-normalised|normalised? (?:the rewards )?within (?:each|its) group|group normalisation"],
    "grpo": [r"\bGRPO\b"],
    "high-entropy-tokens": [r"high_entropy_tokens", r"80/20"],
    "kl-cov": [r"\bKL-Cov\b"],
    "kl-estimators": [r"\bk_?[123]\b", r"kl_estimator"],
    "kl-ref": [r"kl_ref"],
    "label-free": [r"label-free", r"label_accuracy"],
    "llds": [r"\bLLDS\b", r"`llds\b", r"\bllds\.py"],
    "lora": [r"\bLoRA\b"],
    "lp-reg": [r"\bLp-Reg\b", r"lp_reg"],
    "majority-vote": [r"majority[- ]vote", r"majority answer"],
    "nats": [r"\bnats?\b"],
    "nf4": [r"\bNF4\b", r"\b4-bit\b"],
    "nucleus": [r"\bnucleus\b", r"\btop-p\b"],
    "open-set-filter": [r"open-set", r"wisdom[- ]of[- ]crowds"],
    "particle-filter": [r"particle filter", r"impoverish"],
    "pass-at-k": [r"pass@"],
    "pear": [r"\bPEAR\b"],
    "perplexity": [r"\bperplexity\b"],
    "plpd": [r"\bPLPD\b"],
    "policy": [r"\\pi_\{?old", r"\\pi_\{?ref", r"π_old", r"π_ref"],
    "policy-gradient": [r"(?:natural|vanilla) policy[- ]gradient", r"natural gradient"],
    "ppo-clip": [r"\bPPO-clip\b", r"PPO's clip"],
    "process-reward-model": [r"\bPRMs?\b", r"process reward"],
    "profile": [r"`smoke`", r"\bprofiles?\b"],
    "response-mask": [r"response mask"],
    "riskpo": [r"\bRiskPO\b"],
    "rlvr": [r"\bRLVR\b", r"verifiable reward"],
    "rvar": [r"\bRVaR\b", r"\bCVaR\b", r"value-at-risk"],
    "sam": [r"\bSAM\b", r"sharpness-aware"],
    "sar": [r"\bSAR\b"],
    "seed-spread": [r"seed spread"],
    "self-critique": [r"Self-Critique"],
    "sigma-reparam": [r"σReparam"],
    "siren": [r"\bSIREN\b", r"`siren\b", r"\bsiren\.py"],
    "softmax": [r"\bsoftmax\b"],
    "spear": [r"\bSPEAR\b"],
    "spectral-norm": [r"spectral norm"],
    "steer": [r"\bSTEER\b", r"`steer\b", r"\bsteer\.py"],
    "systematic-resampling": [r"(?:\*\*)?systematic(?:\*\*)? resampling"],
    "tea-rl": [r"tea_rl", r"TEA-RL"],
    "temperature": [r"\btemperature\b"],
    "tent": [r"\bTent\b"],
    "transform-batch": [r"transform_batch"],
    "ttrl": [r"\bTTRL\b"],
    "ulorl": [r"\bulorl\b", r"UloRL"],
    "warm-start": [r"(?i)warm[- ]start"],
    "wild-streams": [r"\bwild\b"],
}

ENTRY = re.compile(r'^<a id="(?P<anchor>[^"]+)"></a>\*\*(?P<term>[^*]+)\*\*(?P<body>.*?)(?=^<a id="|^## |\Z)',
                   re.M | re.S)
FIRST_DEFINED = re.compile(r"first defined in \[[^\]]+\]\(\.\./notebooks/([^)]+\.ipynb)\)|defined in the \[metric glossary\]")


def markdown_of(notebook: Path) -> str:
    """All markdown cells of a notebook, one after another."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                       for c in cells if c["cell_type"] == "markdown")


def glossary_entries(text: str) -> dict[str, tuple[str, str]]:
    """{anchor: (term, the rest of its entry)} of the glossary, in the order they appear."""
    return {m.group("anchor"): (m.group("term").strip(), m.group("body")) for m in ENTRY.finditer(text)}


def terms_used(markdown: str) -> set[str]:
    """The anchors of TERMS whose patterns occur in `markdown`."""
    return {anchor for anchor, patterns in TERMS.items() if any(re.search(p, markdown) for p in patterns)}


def test_the_term_finder_finds_terms_and_nothing_else():
    markdown = "GRPO with clip-higher keeps the forks; pass@8 falls. A groupie, a tentative step."
    assert terms_used(markdown) == {"grpo", "clip-higher", "fork-token", "pass-at-k"}


def test_the_glossary_is_alphabetical_and_every_entry_has_a_definition_and_where_it_is_defined():
    entries = glossary_entries(GLOSSARY.read_text(encoding="utf-8"))
    anchors = list(entries)
    assert len(anchors) >= len(TERMS) // 2, "the glossary's entries were not found: is the entry format intact?"
    assert len(set(anchors)) == len(anchors), "two glossary entries share an anchor"
    assert anchors == sorted(anchors), "glossary entries are not in alphabetical order of their anchors: " + \
        ", ".join(a for a, b in zip(anchors, sorted(anchors)) if a != b)
    for anchor, (term, body) in entries.items():
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", anchor), f"anchor {anchor!r}: lower case and hyphens only"
        assert FIRST_DEFINED.search(body), f"glossary entry {term!r} does not say where it is first defined"
        definition = body.split("\n", 1)[1] if "\n" in body else ""
        assert len(definition.split()) >= 12, f"glossary entry {term!r} needs a definition of a sentence or two"


def test_every_listed_term_a_notebook_uses_is_in_the_glossary():
    anchors = set(glossary_entries(GLOSSARY.read_text(encoding="utf-8")))
    missing = [f"{notebook.name} uses {anchor!r} (found by {TERMS[anchor]})"
               for notebook in NOTEBOOKS for anchor in sorted(terms_used(markdown_of(notebook)) - anchors)]
    assert not missing, "docs/glossary.md lacks these terms that notebooks use: add an entry for each\n" + \
        "\n".join(missing)


def test_the_notebook_named_as_first_defining_a_term_uses_it():
    entries = glossary_entries(GLOSSARY.read_text(encoding="utf-8"))
    wrong = []
    for anchor, (term, body) in entries.items():
        for name in re.findall(r"\]\(\.\./notebooks/([^)]+\.ipynb)\)", body.split("\n", 1)[0]):
            notebook = ROOT / "notebooks" / name
            if anchor in TERMS and notebook.exists() and anchor not in terms_used(markdown_of(notebook)):
                wrong.append(f"{term!r} is said to be first defined in {name}, whose markdown does not use it")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_title_cell_links_the_glossary(notebook):
    title = json.loads(notebook.read_text())["cells"][0]
    source = "".join(title["source"]) if isinstance(title["source"], list) else title["source"]
    assert TITLE_LINK in source, (f"{notebook.name}: add to the title cell the line "
                                  "`Terms and symbols: [glossary](../docs/glossary.md)`")
