"""Meta-SGD (Li et al., 2017): the inner loop's step sizes are meta-learned per parameter.

Here on the head the device fine-tunes (ANIL's inner loop): the weights' step sizes are a vector
over the embedding dimensions, shared by every word's row so that they do not depend on how many
words are enrolled, plus one step size for the biases.
"""

from __future__ import annotations

from edge_meta.train.learners.anil import ANIL


class MetaSGD(ANIL):
    name = "metasgd"
    per_dimension_lr = True
