"""The thesis's published numbers (THESIS.md section 6), to print beside ours.

Its Forgetting values were computed with the all-pairs bug (THESIS.md section 5), so they are not
directly comparable with ours; they are shown for orientation only.
"""

METHOD_ORDER = ("original", "finetune", "random_labels")

# Table 3: Forgetting vs alpha on group 0, (O, FT, RND).
ALPHA = {
    2: (0.21, 0.26, 0.14),
    5: (0.38, 0.51, 0.23),
    10: (0.60, 0.69, 0.41),
    15: (0.70, 0.78, 0.50),
    20: (0.76, 0.83, 0.57),
    25: (0.80, 0.86, 0.63),
    30: (0.83, 0.88, 0.67),
    35: (0.85, 0.89, 0.71),
}

# Tables 4-7: group 0, epochs 2/4/8/16.
EPOCHS = (2, 4, 8, 16)
EPOCH_SWEEP = {
    "finetune": {
        "utility": (1.25, 1.24, 1.21, 1.18),
        "test_mae": (4.93, 4.96, 5.09, 5.21),
        "forgetting": (0.75, 0.75, 0.78, 0.79),
        "F": (0.93, 0.94, 0.95, 0.94),
    },
    "random_labels": {
        "utility": (0.75, 0.41, 0.43, 0.45),
        "test_mae": (8.2, 15.09, 14.3, 13.59),
        "forgetting": (0.65, 0.249, 0.242, 0.246),
        "F": (0.49, 0.10, 0.10, 0.11),
    },
}
ORIGINAL = {"test_mae": 4.81, "utility": 1.28, "forgetting": 0.672, "F": 0.86}
RETRAINED_TEST_MAE = 6.17

# Table 8: all groups, (O, FT, RND) for utility, forgetting and F.
GROUPS = {
    0: {"utility": (1.28, 1.21, 0.75), "forgetting": (0.67, 0.78, 0.65), "F": (0.86, 0.94, 0.49)},
    1: {"utility": (1.02, 1.04, 0.79), "forgetting": (0.79, 0.80, 0.78), "F": (0.81, 0.83, 0.61)},
    2: {"utility": (1.01, 1.03, 0.95), "forgetting": (0.79, 0.81, 0.76), "F": (0.80, 0.83, 0.72)},
    3: {"utility": (1.04, 1.05, 0.95), "forgetting": (0.73, 0.74, 0.70), "F": (0.76, 0.77, 0.67)},
    4: {"utility": (1.14, 1.13, 1.16), "forgetting": (0.53, 0.59, 0.54), "F": (0.60, 0.67, 0.63)},
}
