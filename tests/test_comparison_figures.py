"""The colour map of methods (minirl.plots) and the comparison figures drawn with it: every registered
method has one colour, no two lines of one figure (or one panel of the small multiples) share a colour
and a dash, GRPO is the thick black line of every row, and the entropy-reward figure explains the
label-free methods' inverted law from their own logged vote agreement."""
import matplotlib
import pytest

matplotlib.use("Agg")

from minirl import METHODS  # noqa: E402
from minirl.compare import BATCH_LEVEL_VARIANTS, STEPWISE_VARIANTS, TINY_SCALE_VARIANTS, TOOL_VARIANTS  # noqa: E402
from minirl.plots import (METHOD_FAMILIES, OTHER_FAMILY, coinciding_note, line_styles, method_colour,  # noqa: E402
                          method_family, shared_steps)

BUILT_IN = sorted(name for name, m in METHODS.items() if m.policy_loss.__module__.startswith("minirl.methods."))
# Every label the course's figures draw together: the shipped grids' variants, and all methods at once.
FIGURES = {"loss and batch-level methods (one figure in the report)": [*TINY_SCALE_VARIANTS, *BATCH_LEVEL_VARIANTS],
           "stepwise methods": list(STEPWISE_VARIANTS), "tool methods": list(TOOL_VARIANTS),
           "every registered method": BUILT_IN}


def pairs(styles: dict) -> list:
    return [(style["color"], str(style["ls"])) for style in styles.values()]


def test_every_registered_method_is_in_exactly_one_family():
    listed = [m for methods in METHOD_FAMILIES.values() for m in methods]
    assert len(listed) == len(set(listed)), "a method is listed in two families"
    missing = sorted(set(BUILT_IN) - set(listed))
    assert not missing, f"add {missing} to a family of minirl.plots.METHOD_FAMILIES (it picks their colour)"
    assert not set(listed) - set(BUILT_IN), "METHOD_FAMILIES lists a method that is not registered"


def test_one_colour_per_method_and_distinct_colours_inside_a_family():
    for family, methods in METHOD_FAMILIES.items():
        colours = [method_colour(m) for m in methods]
        assert len(set(colours)) == len(colours), f"two methods of {family!r} share a colour: {colours}"
    assert method_colour("grpo") == "black"
    assert all(method_colour(m) != "black" for m in BUILT_IN if m != "grpo")


@pytest.mark.parametrize("figure", FIGURES)
def test_no_two_labels_of_one_figure_share_colour_and_dash(figure):
    labels = FIGURES[figure]
    styles = line_styles(labels)
    assert sorted(styles) == sorted(set(labels))
    assert len(set(pairs(styles))) == len(styles), sorted(zip(pairs(styles), styles))
    for label, style in styles.items():            # the method's colour, whatever else the figure holds
        assert style["color"] == (method_colour(label.split()[0]))


def test_a_family_panel_draws_its_methods_solid_in_distinct_colours():
    from minirl.comparison_figures import family_rows

    rows = family_rows([*TINY_SCALE_VARIANTS, *BATCH_LEVEL_VARIANTS])
    assert list(rows) == [f for f in METHOD_FAMILIES if f in rows], "rows in METHOD_FAMILIES' order"
    assert all(labels[0] == "grpo" for labels in rows.values()), "grpo leads every row"
    for family, labels in rows.items():
        styles = line_styles(labels)
        assert len(set(pairs(styles))) == len(styles)
        methods = {label.split()[0] for label in labels}
        firsts = [style for label, style in styles.items() if style["ls"] == "-"]
        assert len(firsts) == len(methods), f"{family}: one solid line per method, dashes only for its variants"


def test_unlisted_methods_get_palette_colours_and_never_collide():
    labels = ["grpo", "my_method", "my_method lr 1e-5", "other_idea", *[f"idea{i}" for i in range(12)]]
    styles = line_styles(labels)
    assert method_family("my_method") == OTHER_FAMILY
    assert len(set(pairs(styles))) == len(styles)
    assert styles["my_method"]["color"] == styles["my_method lr 1e-5"]["color"]


def _lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_method_comparison_is_small_multiples_with_grpo_thick_black_in_every_row():
    import matplotlib.pyplot as plt

    from minirl.comparison_figures import method_comparison_figure
    from minirl.shipped import load

    runs = load("cpu_all_methods").runs
    fig = method_comparison_figure(runs, metrics=("entropy", "pass_at_k"), k=8)
    axes = [ax for ax in fig.axes if _lines(ax)]
    families = {method_family(label) for label in runs if label != "grpo"}
    assert len(axes) == 2 * len(families)
    titles = [ax.get_title() for ax in axes if ax.get_title()] + [fig.get_suptitle()]
    assert len(titles) == 3 and all(t.count("(") <= 1 for t in titles), titles       # no doubled parentheses
    drawn = set()
    for ax in axes:
        lines = _lines(ax)
        grpo = [line for line in lines if line.get_label() == "grpo"]
        assert len(grpo) == 1 and grpo[0].get_color() == "black" and grpo[0].get_linewidth() == 2.8
        looks = [(line.get_color(), line.get_linestyle()) for line in lines]
        assert len(set(looks)) == len(looks), f"two lines of one panel look alike: {looks}"
        assert len({method_family(line.get_label()) for line in lines if line.get_label() != "grpo"}) == 1
        drawn |= {line.get_label() for line in lines}
    assert drawn == set(runs), "every variant is drawn, in one row"
    plt.close(fig)


def test_few_variants_share_one_row_of_panels():
    import matplotlib.pyplot as plt

    from minirl.comparison_figures import method_comparison_figure
    from minirl.shipped import load

    runs = load("cpu_tool_methods").runs
    fig = method_comparison_figure(runs, metrics=("entropy", "pass_at_1", "pass_at_k"), k=8)
    axes = [ax for ax in fig.axes if _lines(ax)]
    assert len(axes) == 3 and all({line.get_label() for line in _lines(ax)} == set(runs) for ax in axes)
    plt.close(fig)


def test_label_free_methods_fit_the_law_to_their_vote_and_an_inverted_one_to_the_true_reward():
    """The explanation the figure and the report give, checked on the shipped runs: the share agreeing
    with the majority vote (what TTRL, ETTRL and EVOL-RL train on) rises as their entropy falls (a > 0),
    while their true reward falls with it (a < 0); GRPO's true reward has a > 0."""
    import matplotlib.pyplot as plt

    from minirl.comparison_figures import entropy_reward_figure, vote_fits
    from minirl.shipped import load

    runs = load("cpu_all_methods").runs
    fig, fits = entropy_reward_figure(runs)
    votes = vote_fits(runs)
    assert sorted(votes) == ["ettrl", "evol_rl", "ttrl"]
    for label, (a, b, r2, n) in votes.items():
        assert a > 0 and fits[label][0] < 0 and r2 > fits[label][2], (label, votes[label], fits[label])
    assert fits["grpo"][0] > 0
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(runs)          # a panel per variant
    plt.close(fig)


def rows(values, start=1):
    return [{"step": 0, "pass_at_1": 0.3}] + [{"step": s, "entropy": v, "reward": 0.5}
                                               for s, v in enumerate(values, start)]


def test_shared_steps_and_the_note_about_coinciding_runs():
    a, b = rows([0.5, 0.4, 0.3]), rows([0.5, 0.4, 0.35])
    assert shared_steps({"a": a, "b": b}, ("entropy", "reward", "pass_at_1")) == 2
    assert "through step 2" in coinciding_note({"a": a, "b": b}, ("entropy",)) and "part from step 3" in \
        coinciding_note({"a": a, "b": b}, ("entropy",))
    assert shared_steps({"a": a, "b": rows([0.6, 0.4, 0.3])}, ("entropy",)) == 0
    assert coinciding_note({"a": a, "b": rows([0.6, 0.4, 0.3])}, ("entropy",)) == ""
    assert "every step" in coinciding_note({"a": a, "b": rows([0.5, 0.4, 0.3])}, ("entropy",))


def test_runs_figure_titles_have_one_pair_of_parentheses_and_say_where_runs_coincide(tmp_path):
    import matplotlib.pyplot as plt

    from minirl.plots import plot_runs, runs_figure

    runs = {"a": rows([0.5, 0.4, 0.3]), "b": rows([0.5, 0.45, 0.3])}
    fig = runs_figure(runs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all(t.count("(") <= 1 for t in titles), titles
    assert "through step 1" in fig.get_suptitle() and "part from step 2" in fig.get_suptitle()
    plt.close(fig)
    assert plot_runs(runs, tmp_path / "fig.png").stat().st_size > 0


def test_grpo_is_solid_black_wherever_it_comes_in_the_labels():
    styles = line_styles(["grpo G=16", "dapo", "grpo", "dapo G=4"])
    assert styles["grpo"] == {"color": "black", "lw": 2.8, "zorder": 5, "ls": "-"}
    assert styles["grpo G=16"]["color"] == "black" and styles["grpo G=16"]["ls"] != "-"
    assert styles["dapo"]["ls"] == "-" and styles["dapo G=4"]["ls"] != "-"
