"""Online serving: the FastAPI app (:mod:`mlplatform.serving.app`) that answers with the registry's champion."""
