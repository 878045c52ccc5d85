"""A LightGBM model loaded from LightGBM's own text format, behind the scikit-learn API.

The registry stores a LightGBM final estimator as `booster_.model_to_string()` (plain text, no
pickle) and loads it into `NativeLightGBM`, which predicts exactly as the original
`LGBMClassifier`/`LGBMRegressor` did:

    >>> model = NativeLightGBM.from_string(text, classes=[0, 1])
    >>> model.predict_proba(X)[:2]
    array([[0.93, 0.07], [0.12, 0.88]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils.metaestimators import available_if

from shipyard.core.errors import Invalid


def _is_classifier(model: NativeLightGBM) -> bool:
    return model.classes is not None


class NativeLightGBM(BaseEstimator):
    """A trained LightGBM booster; `classes` given means a classifier, else a regressor.

    It follows the scikit-learn contract (parameters stored by `__init__`, learned attributes
    end in `_`) so a Pipeline, SHAP (give it `booster_`) and `shipyard.evaluate` can use it,
    but it cannot be re-fitted: it is a stored model, not a training recipe.
    """

    def __init__(
        self,
        booster: lightgbm.Booster | None = None,
        classes: Sequence[Any] | np.ndarray | None = None,
    ) -> None:
        self.booster = booster
        self.classes = classes

    @classmethod
    def from_string(
        cls, model_str: str, classes: Sequence[Any] | np.ndarray | None = None
    ) -> NativeLightGBM:
        """Parse LightGBM's model text (`Booster.model_to_string()`)."""
        return cls(lightgbm.Booster(model_str=model_str), classes=classes)

    @property
    def booster_(self) -> lightgbm.Booster:
        if self.booster is None:
            raise Invalid("this NativeLightGBM holds no booster; load it from a model bundle.")
        return self.booster

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("a LightGBM regressor has no classes_")
        return np.asarray(self.classes)

    @property
    def n_features_in_(self) -> int:
        return int(self.booster_.num_feature())

    def __sklearn_is_fitted__(self) -> bool:
        return self.booster is not None

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        if _is_classifier(self):
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: Any = None) -> NativeLightGBM:
        raise Invalid(
            "a NativeLightGBM is a stored LightGBM model and cannot be re-fitted; train a new "
            "model with lightgbm.LGBMClassifier or LGBMRegressor instead."
        )

    def predict(self, X: Any) -> np.ndarray:
        """Class labels for a classifier (as `LGBMClassifier.predict`), values for a regressor."""
        if _is_classifier(self):
            labels: np.ndarray = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
            return labels
        return np.asarray(self.booster_.predict(X))

    @available_if(_is_classifier)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class in `classes_` order."""
        result = np.asarray(self.booster_.predict(X))
        if result.ndim == 1:  # binary objectives return P(classes_[1]) only
            return np.vstack((1.0 - result, result)).T
        return result
