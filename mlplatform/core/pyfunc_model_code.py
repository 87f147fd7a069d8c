"""The script MLflow runs to load a candidate logged as code by :func:`mlplatform.core.pyfunc.save_pyfunc`.

MLflow executes this file, not an import of it; it names the model class, and the class loads the weights.
"""

from mlflow.models import set_model

from mlplatform.core.pyfunc import CandidatePyfunc

set_model(CandidatePyfunc())
