"""The paper's other two editing problems, as data, prompts and judges only:

- ``fc``: fact-checking on VitaminC: an edit is a piece of evidence, in-scope inputs are the claims it
  decides (:mod:`serac.tasks.fc.data`);
- ``sentiment``: ConvSent-style sentiment editing of a chat model, ``Topic: X -> Sentiment: s``
  (:mod:`serac.tasks.sentiment`: the data recipe, the prompts, the VADER judge, the training
  objective's log-probabilities).

They run on the one stack: ``serac train --task fc|sentiment`` (``serac.train.fc`` /
``serac.train.sentiment``) writes an ordinary ``serac_config.json`` artifact (a classifier base
model and a pair-classifier counterfactual are model kinds of serac/base.py), and ``serac eval
--task fc|sentiment`` / ``serac bench`` evaluate it with the one runner, report and cache.
"""
