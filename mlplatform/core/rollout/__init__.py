"""Putting a model in front of traffic safely (method phases 5 and 8), one subject per module:

* :mod:`~mlplatform.core.rollout.policy`: how a test, a canary and the rollback rule judge (the brief's ``rollout``).
* :mod:`~mlplatform.core.rollout.assignment`: the stable champion / challenger split of entities.
* :mod:`~mlplatform.core.rollout.ab_test`: the A/B statistics (power analysis, two-proportion test or bootstrap)
  and the ship / iterate / kill decision.
* :mod:`~mlplatform.core.rollout.canary`: serving health, the automatic-rollback rule and the canary steps.
* :mod:`~mlplatform.core.rollout.prediction_log`: reading the serving app's prediction log and joining labels.
* :mod:`~mlplatform.core.rollout.registry`: rollout state in the MLflow registry, promotion, history, rollback.
* :mod:`~mlplatform.core.rollout.ab_report`: the method's A/B template filled from the prediction log.

Rollout state lives in the registry, so the serving app and the Dagster assets agree without talking to each
other: the ``champion`` and ``challenger`` aliases, the challenger's traffic share as a registered-model tag,
and each promotion and rollback as model-version tags.
"""
