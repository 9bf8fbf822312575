"""Classic machine learning from scratch: linear models, SVMs, trees, ensembles, clustering, PCA.

Reference implementations for the appendix :doc:`/chapters/classic-ml/index`. Every function is
pure NumPy (SciPy for one quadratic program), takes arrays and returns arrays or small tuples,
and is checked in ``tests/test_classic.py`` against scikit-learn, the library practitioners use.
Where our convention differs from scikit-learn's, the docstring says so.

Conventions:

* ``X`` is ``(N, D)`` float, one sample a row. Binary labels are ``{0, 1}`` for logistic
  regression and ``{-1, +1}`` for SVMs and AdaBoost margins, as in the textbooks.
* Randomness comes only from an explicit ``numpy.random.Generator`` argument (``dlbook.rng``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid", "logistic_regression", "linear_svm_sgd", "linear_kernel", "polynomial_kernel",
    "rbf_kernel", "svm_dual", "svm_decision_function", "impurity", "best_split", "fit_tree",
    "predict_tree", "random_forest", "predict_forest", "ensemble_variance", "adaboost_samme",
    "gradient_boosting", "leaf_weight", "split_gain", "best_newton_split", "kmeans", "pca",
    "knn_predict", "gaussian_nb", "multinomial_nb", "mahalanobis", "whitening_matrix", "vif",
]


# ----------------------------------------------------------------------------- validation
def _as_matrix(name: str, X) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {X.shape}")
    return X


def _as_labels(name: str, y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    return y


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


# ----------------------------------------------------------------------------- logistic regression
def sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma(z) = 1 / (1 + e^{-z}), written with exp of -|z| only, so it never overflows."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def logistic_regression(X, y, *, C: float = 1.0, lr: float = 0.5, steps: int = 20_000) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by full-batch gradient descent; returns ``(w, b)``.

    Minimises scikit-learn's ``LogisticRegression(C=C)`` objective divided by ``C N``:

        J(w, b) = (1/N) sum_i [-y_i log p_i - (1 - y_i) log(1 - p_i)] + ||w||^2 / (2 C N),
        p_i = sigma(w^T x_i + b),

    whose gradient is ``X^T (p - y) / N + w / (C N)`` for ``w`` and ``mean(p - y)`` for the
    unpenalised intercept ``b``. ``y`` in {0, 1}. The loss is the Bernoulli negative log
    likelihood with the canonical (logit) link: log(p / (1 - p)) = w^T x + b.
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0]).astype(float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y must be 0/1 labels, got values {np.unique(y)[:5]}")
    _positive("C", C)
    _positive("lr", lr)
    N = X.shape[0]
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(steps):
        p = sigmoid(X @ w + b)                      # (N,)
        w = w - lr * (X.T @ (p - y) / N + w / (C * N))
        b = b - lr * np.mean(p - y)
    return w, b


# ----------------------------------------------------------------------------- SVMs
def linear_svm_sgd(X, y, *, C: float = 1.0, epochs: int = 5000, batch_size: int | None = None,
                   generator: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """Soft-margin linear SVM by (stochastic) subgradient descent on hinge loss + L2; returns ``(w, b)``.

    The primal soft-margin SVM, min (1/2)||w||^2 + C sum_i xi_i subject to
    y_i (w^T x_i + b) >= 1 - xi_i, xi_i >= 0, equals the unconstrained problem

        min_w,b  (lambda/2)||w||^2 + (1/N) sum_i max(0, 1 - y_i (w^T x_i + b)),  lambda = 1 / (C N)

    (divide by C N). Steps are eta_t = 1 / (lambda t + 1) (Pegasos' 1/(lambda t), Shalev-Shwartz
    et al. 2007, shifted so the first step is 1), and the returned weights average the second half
    of the iterates, which removes the zig-zag of the non-smooth hinge. The unpenalised bias is
    fitted on centred features (the same problem, better conditioned) and mapped back.
    ``y`` in {-1, +1}; ``batch_size=None`` is full-batch subgradient descent, otherwise each step
    uses ``batch_size`` rows drawn by ``generator``.
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0]).astype(float)
    if not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError(f"y must be -1/+1 labels, got values {np.unique(y)[:5]}")
    _positive("C", C)
    if batch_size is not None and generator is None:
        raise ValueError("batch_size needs a generator, got generator=None")
    N, D = X.shape
    lam = 1.0 / (C * N)
    mu = X.mean(0)
    Xc = X - mu                                                # w^T x + b = w^T (x - mu) + (b + w^T mu)
    w, b = np.zeros(D), 0.0
    avg, n_avg = np.zeros(D + 1), 0
    for t in range(1, epochs + 1):
        idx = np.arange(N) if batch_size is None else generator.choice(N, batch_size, replace=False)
        Xi, yi = Xc[idx], y[idx]
        active = yi * (Xi @ w + b) < 1                         # samples inside the margin
        g_w = lam * w - yi[active] @ Xi[active] / len(idx)     # subgradient of the objective
        g_b = -np.sum(yi[active]) / len(idx)
        eta = 1.0 / (lam * t + 1)
        w, b = w - eta * g_w, b - eta * g_b
        if t > epochs // 2:
            avg, n_avg = avg + np.append(w, b - w @ mu), n_avg + 1
    return avg[:D] / n_avg, float(avg[D] / n_avg)


def linear_kernel(A, B) -> np.ndarray:
    """K(a, b) = a^T b, shape ``(len(A), len(B))``."""
    return np.asarray(A, float) @ np.asarray(B, float).T


def polynomial_kernel(A, B, *, degree: int = 2, coef0: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """K(a, b) = (gamma a^T b + coef0)^degree (scikit-learn's ``kernel="poly"``)."""
    return (gamma * linear_kernel(A, B) + coef0) ** degree


def rbf_kernel(A, B, *, gamma: float = 1.0) -> np.ndarray:
    """K(a, b) = exp(-gamma ||a - b||^2) (scikit-learn's ``kernel="rbf"``)."""
    A, B = np.asarray(A, float), np.asarray(B, float)
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T   # (len(A), len(B))
    return np.exp(-gamma * np.maximum(sq, 0.0))


def svm_dual(K, y, *, C: float = 1.0, tol: float = 1e-6) -> tuple[np.ndarray, float]:
    """Solve the soft-margin SVM dual for the Gram matrix ``K``; returns ``(alpha, b)``.

        max_alpha  sum_i alpha_i - (1/2) sum_ij alpha_i alpha_j y_i y_j K_ij
        s.t.       0 <= alpha_i <= C,  sum_i alpha_i y_i = 0

    (Cortes & Vapnik, 1995), solved with SciPy's SLSQP: fine for a few hundred samples, which
    is what the appendix uses (libsvm's SMO does the same job at scale). ``b`` is averaged over
    the free support vectors 0 < alpha_i < C, where y_i f(x_i) = 1 holds exactly.
    """
    from scipy.optimize import minimize

    K = _as_matrix("K", K)
    y = _as_labels("y", y, K.shape[0]).astype(float)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square, got shape {K.shape}")
    if not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError(f"y must be -1/+1 labels, got values {np.unique(y)[:5]}")
    _positive("C", C)
    Q = (y[:, None] * y[None, :]) * K                          # (N, N)
    res = minimize(lambda a: 0.5 * a @ Q @ a - a.sum(), np.zeros(len(y)), jac=lambda a: Q @ a - 1,
                   method="SLSQP", bounds=[(0.0, C)] * len(y),
                   constraints=[{"type": "eq", "fun": lambda a: a @ y, "jac": lambda a: y}],
                   options={"maxiter": 1000, "ftol": 1e-12})
    alpha = np.clip(res.x, 0.0, C)
    alpha[alpha < tol * C] = 0.0
    free = (alpha > tol * C) & (alpha < C * (1 - tol))
    f_no_b = Q @ alpha * y                                     # sum_j alpha_j y_j K_ij
    b = float(np.mean(y[free] - f_no_b[free])) if free.any() else float(np.mean(y - f_no_b))
    return alpha, b


def svm_decision_function(K_test_train, alpha, y, b: float) -> np.ndarray:
    """f(x) = sum_i alpha_i y_i K(x_i, x) + b for each row of ``K_test_train`` (shape ``(M, N)``)."""
    return np.asarray(K_test_train, float) @ (np.asarray(alpha) * np.asarray(y, float)) + b


# ----------------------------------------------------------------------------- decision trees
def impurity(counts, *, criterion: str = "gini") -> np.ndarray:
    """Impurity of class-count vectors (last axis): Gini 1 - sum p_k^2 or entropy -sum p_k log2 p_k.

    Entropy in bits, as scikit-learn's ``criterion="entropy"`` (the base does not change a split).
    """
    counts = np.asarray(counts, float)
    p = counts / np.maximum(counts.sum(-1, keepdims=True), 1e-300)
    if criterion == "gini":
        return 1 - (p**2).sum(-1)
    if criterion == "entropy":
        return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(-1)
    raise ValueError(f"criterion must be 'gini' or 'entropy', got {criterion!r}")


def _split_scores(x: np.ndarray, Y: np.ndarray, criterion: str):
    """Every threshold on one feature: (thresholds, impurity decrease) for one-hot/targets ``Y``.

    Classification (``criterion`` gini/entropy): Y is one-hot (N, K). Regression ("squared_error"):
    Y is (N, 1) and the impurity is the variance. Thresholds are midpoints between distinct sorted
    values, as scikit-learn's.
    """
    order = np.argsort(x, kind="stable")
    xs, Ys = x[order], Y[order]
    N = len(xs)
    left = np.cumsum(Ys, 0)[:-1]                               # (N-1, K): sums left of each cut
    right = Ys.sum(0) - left
    n_left = np.arange(1, N)[:, None]
    valid = xs[1:] > xs[:-1]                                   # cut only between distinct values
    if criterion == "squared_error":
        sq = np.cumsum(Ys[:, 0] ** 2)[:-1]
        sse_left = sq - left[:, 0] ** 2 / n_left[:, 0]
        sse_right = (Ys[:, 0] ** 2).sum() - sq - right[:, 0] ** 2 / (N - n_left[:, 0])
        parent = (Ys[:, 0] ** 2).sum() - Ys[:, 0].sum() ** 2 / N
        decrease = (parent - sse_left - sse_right) / N
    else:
        parent = impurity(Ys.sum(0), criterion=criterion)
        decrease = parent - (n_left[:, 0] * impurity(left, criterion=criterion)
                             + (N - n_left[:, 0]) * impurity(right, criterion=criterion)) / N
    thresholds = (xs[1:] + xs[:-1]) / 2
    return thresholds[valid], decrease[valid]


def best_split(X, y, *, criterion: str = "gini", features=None) -> tuple[int, float, float]:
    """Exhaustive search for the split ``x[:, j] <= t`` with the largest impurity decrease.

    Returns ``(feature, threshold, decrease)`` where decrease = I(parent) - (N_L/N) I(left) -
    (N_R/N) I(right) (Breiman et al., 1984, "CART"); ``feature = -1`` when no split exists. Ties go to the
    first feature in ``features`` order (scikit-learn breaks them with its random feature order).
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0])
    if criterion == "squared_error":
        Y = y.astype(float)[:, None]
    elif criterion in ("gini", "entropy"):
        Y = (y[:, None] == np.unique(y)[None, :]).astype(float)  # one-hot (N, K)
    else:
        raise ValueError(f"criterion must be 'gini', 'entropy' or 'squared_error', got {criterion!r}")
    best = (-1, np.nan, 0.0)
    for j in range(X.shape[1]) if features is None else features:
        t, d = _split_scores(X[:, j], Y, criterion)
        if len(d) and d.max() > best[2] + 1e-12:
            k = int(np.argmax(d))
            best = (int(j), float(t[k]), float(d[k]))
    return best


def fit_tree(X, y, *, criterion: str = "gini", max_depth: int | None = None, max_features: int | None = None,
             min_samples_split: int = 2, generator: np.random.Generator | None = None) -> dict:
    """Grow a CART tree greedily with :func:`best_split`; a leaf stores the mean of its targets.

    For classification ``y`` must be integers 0..K-1 and a leaf stores the class frequencies;
    for ``criterion="squared_error"`` a leaf stores the mean. ``max_features`` features are drawn
    without replacement at *every split* (the random forest's column sampling, Breiman 2001).
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0])
    if max_features is not None and not 1 <= max_features <= X.shape[1]:
        raise ValueError(f"max_features must be in [1, {X.shape[1]}], got {max_features}")
    n_classes = None if criterion == "squared_error" else int(y.max()) + 1

    def leaf(idx):
        if n_classes is None:
            return {"value": np.array([y[idx].mean()])}
        return {"value": np.bincount(y[idx], minlength=n_classes) / len(idx)}

    def grow(idx, depth):
        if len(idx) < min_samples_split or (max_depth is not None and depth >= max_depth) or np.all(y[idx] == y[idx][0]):
            return leaf(idx)
        features = None if max_features is None else generator.choice(X.shape[1], max_features, replace=False)
        j, t, d = best_split(X[idx], y[idx], criterion=criterion, features=features)
        if j < 0:
            return leaf(idx)
        go_left = X[idx, j] <= t
        return {"feature": j, "threshold": t, "left": grow(idx[go_left], depth + 1), "right": grow(idx[~go_left], depth + 1)}

    return grow(np.arange(X.shape[0]), 0)


def predict_tree(tree: dict, X) -> np.ndarray:
    """Leaf values for each row: ``(N, K)`` class frequencies or ``(N, 1)`` means."""
    X = _as_matrix("X", X)
    out = np.empty((X.shape[0], len(_first_leaf(tree)["value"])))
    for i, x in enumerate(X):
        node = tree
        while "feature" in node:
            node = node["left"] if x[node["feature"]] <= node["threshold"] else node["right"]
        out[i] = node["value"]
    return out


def _first_leaf(tree: dict) -> dict:
    while "feature" in tree:
        tree = tree["left"]
    return tree


def random_forest(X, y, *, n_trees: int = 50, max_features: int | None = None, criterion: str = "gini",
                  max_depth: int | None = None, generator: np.random.Generator) -> list[dict]:
    """Bagged CART trees (bootstrap rows) with ``max_features`` columns drawn at each split (Breiman, 2001)."""
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0])
    if n_trees < 1:
        raise ValueError(f"n_trees must be >= 1, got {n_trees}")
    trees = []
    for _ in range(n_trees):
        rows = generator.integers(0, X.shape[0], X.shape[0])   # bootstrap sample, with replacement
        trees.append(fit_tree(X[rows], y[rows], criterion=criterion, max_depth=max_depth,
                              max_features=max_features, generator=generator))
    return trees


def predict_forest(trees: list[dict], X) -> np.ndarray:
    """Average of the trees' leaf values (class frequencies or means): ``(N, K)``."""
    return np.mean([predict_tree(t, X) for t in trees], axis=0)


def ensemble_variance(sigma2: float, rho: float, B: int) -> float:
    """Variance of the mean of B identically distributed predictors with variance sigma^2 and
    pairwise correlation rho: rho sigma^2 + (1 - rho) sigma^2 / B (Hastie et al., ESL eq. 15.1)."""
    if B < 1:
        raise ValueError(f"B must be >= 1, got {B}")
    return rho * sigma2 + (1 - rho) * sigma2 / B


# ----------------------------------------------------------------------------- boosting
def adaboost_samme(X, y, *, n_rounds: int = 50, make_learner, learning_rate: float = 1.0):
    """AdaBoost SAMME (Zhu et al., 2009) with any scikit-learn-style weak learner.

    Round t fits h_t with sample weights w, computes the weighted error err_t, and
        alpha_t = lr * (log((1 - err_t) / err_t) + log(K - 1)),
        w_i <- w_i exp(alpha_t 1[h_t(x_i) != y_i]), then w <- w / sum(w).
    With K = 2 this is Freund & Schapire's (1997) AdaBoost (alpha twice theirs, the same vote).
    ``make_learner(t)`` returns a fresh unfitted learner. Stops early when err_t = 0, as
    scikit-learn does. Returns ``(learners, alphas, weights)`` with ``weights[t]`` the sample
    weights *used* in round t.
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0])
    K = len(np.unique(y))
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    learners, alphas, weights = [], [], []
    for t in range(n_rounds):
        h = make_learner(t).fit(X, y, sample_weight=w)
        wrong = h.predict(X) != y
        err = np.sum(w[wrong]) / np.sum(w)
        weights.append(w.copy())
        learners.append(h)
        if err <= 0:
            alphas.append(1.0)
            break
        alpha = learning_rate * (np.log((1 - err) / err) + np.log(K - 1))
        alphas.append(alpha)
        w = w * np.exp(alpha * wrong)
        w = w / w.sum()
    return learners, np.array(alphas), weights


def gradient_boosting(X, y, *, n_estimators: int = 100, learning_rate: float = 0.1, make_tree):
    """Gradient boosting for squared loss (Friedman, 2001); returns ``(f0, trees)``.

    F_0 = mean(y); at stage m the pseudo-residuals r = -dL/dF = y - F_{m-1} are fitted by a
    regression tree h_m and F_m = F_{m-1} + lr * h_m. ``make_tree(m)`` returns an unfitted
    regressor. Predict with ``f0 + lr * sum_m h_m(x)``.
    """
    X = _as_matrix("X", X)
    y = _as_labels("y", y, X.shape[0]).astype(float)
    _positive("learning_rate", learning_rate)
    f0 = float(np.mean(y))
    F = np.full(len(y), f0)
    trees = []
    for m in range(n_estimators):
        r = y - F                                              # negative gradient of (y - F)^2 / 2
        h = make_tree(m).fit(X, r)
        F = F + learning_rate * h.predict(X)
        trees.append(h)
    return f0, trees


def leaf_weight(g, h, *, reg_lambda: float = 1.0) -> float:
    """XGBoost's optimal leaf weight w* = -G / (H + lambda) (Chen & Guestrin, 2016, eq. 5).

    G = sum_i g_i, H = sum_i h_i are the sums of the loss's first and second derivatives with
    respect to the current prediction, over the samples in the leaf: w* minimises the second-order
    expansion  G w + (H + lambda) w^2 / 2.
    """
    if reg_lambda < 0:
        raise ValueError(f"reg_lambda must be >= 0, got {reg_lambda}")
    G, H = float(np.sum(g)), float(np.sum(h))
    if H + reg_lambda <= 0:
        raise ValueError(f"H + reg_lambda must be > 0, got {H + reg_lambda}")
    return -G / (H + reg_lambda)


def split_gain(g, h, left, *, reg_lambda: float = 1.0, gamma: float = 0.0) -> float:
    """Structure-score gain of splitting a leaf into ``left`` (boolean mask) and its complement:

        gain = (1/2) [G_L^2/(H_L + lambda) + G_R^2/(H_R + lambda) - G^2/(H + lambda)] - gamma

    (Chen & Guestrin, 2016, eq. 7).
    """
    g, h, left = np.asarray(g, float), np.asarray(h, float), np.asarray(left, bool)

    def score(mask):
        return np.sum(g[mask]) ** 2 / (np.sum(h[mask]) + reg_lambda)

    return 0.5 * (score(left) + score(~left) - score(np.ones_like(left))) - gamma


def best_newton_split(x, g, h, *, reg_lambda: float = 1.0) -> tuple[float, float]:
    """The threshold on one feature with the largest :func:`split_gain`: ``(threshold, gain)``."""
    x = np.asarray(x, float)
    xs = np.unique(x)
    best = (np.nan, -np.inf)
    for t in (xs[1:] + xs[:-1]) / 2:
        gain = split_gain(g, h, x <= t, reg_lambda=reg_lambda)
        if gain > best[1]:
            best = (float(t), float(gain))
    return best


# ----------------------------------------------------------------------------- unsupervised
def kmeans(X, k: int, *, n_iter: int = 100, generator: np.random.Generator, init=None):
    """Lloyd's algorithm (Lloyd, 1982); returns ``(centres, labels, inertia_per_iteration)``.

    Alternates assign (each point to its nearest centre) and update (each centre to the mean of
    its points); both steps can only lower the inertia sum_i ||x_i - mu_{c(i)}||^2, so the list
    returned is non-increasing. Initial centres: ``init`` or k distinct random rows. An emptied
    cluster keeps its old centre. Stops when the assignment no longer changes.
    """
    X = _as_matrix("X", X)
    if not 1 <= k <= X.shape[0]:
        raise ValueError(f"k must be in [1, {X.shape[0]}], got {k}")
    mu = X[generator.choice(X.shape[0], k, replace=False)] if init is None else np.array(init, float)
    labels, history = None, []
    for _ in range(n_iter):
        d2 = ((X[:, None, :] - mu[None, :, :]) ** 2).sum(-1)       # (N, k)
        new = d2.argmin(1)
        history.append(float(d2[np.arange(len(X)), new].sum()))  # inertia after the assign step
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        mu = np.array([X[labels == j].mean(0) if np.any(labels == j) else mu[j] for j in range(k)])
    return mu, labels, history


def pca(X, n_components: int):
    """PCA as the SVD of the centred data: X - mean = U S V^T.

    Returns ``(components, explained_variance, scores)``: the first rows of V^T, S^2 / (N - 1)
    and (X - mean) V. A singular vector is defined only up to sign, and scikit-learn flips signs
    by its own convention (``svd_flip``), so compare components up to sign.
    """
    X = _as_matrix("X", X)
    if not 1 <= n_components <= min(X.shape):
        raise ValueError(f"n_components must be in [1, {min(X.shape)}], got {n_components}")
    Xc = X - X.mean(0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    components = Vt[:n_components]                                # (n_components, D)
    return components, S[:n_components] ** 2 / (X.shape[0] - 1), Xc @ components.T


def knn_predict(X_train, y_train, X, *, k: int = 5) -> np.ndarray:
    """Majority vote of the k nearest training points (Euclidean); ties go to the smallest label,
    as scikit-learn's ``KNeighborsClassifier`` (uniform weights)."""
    X_train, X = _as_matrix("X_train", X_train), _as_matrix("X", X)
    y_train = _as_labels("y_train", y_train, X_train.shape[0])
    if not 1 <= k <= X_train.shape[0]:
        raise ValueError(f"k must be in [1, {X_train.shape[0]}], got {k}")
    classes, y_idx = np.unique(y_train, return_inverse=True)
    d2 = (X**2).sum(1)[:, None] + (X_train**2).sum(1)[None, :] - 2 * X @ X_train.T   # (M, N)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    votes = np.zeros((X.shape[0], len(classes)))
    np.add.at(votes, (np.arange(X.shape[0])[:, None], y_idx[nearest]), 1)
    return classes[votes.argmax(1)]


def _normalize_log(log_joint: np.ndarray) -> np.ndarray:
    """Bayes' rule in log space: subtract the row max before exp, so nothing overflows."""
    z = log_joint - log_joint.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def gaussian_nb(X_train, y_train, X, *, var_smoothing: float = 1e-9) -> np.ndarray:
    """Gaussian naive Bayes posteriors ``(M, K)``: p(c|x) proportional to p(c) prod_j N(x_j; mu_cj, s2_cj).

    Variances are the biased (1/N_c) per-class variances plus ``var_smoothing`` times the largest
    feature variance, as scikit-learn's ``GaussianNB``; priors are the class frequencies.
    """
    X_train, X = _as_matrix("X_train", X_train), _as_matrix("X", X)
    y_train = _as_labels("y_train", y_train, X_train.shape[0])
    classes = np.unique(y_train)
    eps = var_smoothing * X_train.var(0).max()
    log_joint = np.empty((X.shape[0], len(classes)))
    for c, label in enumerate(classes):
        Xc = X_train[y_train == label]
        mu, s2 = Xc.mean(0), Xc.var(0) + eps
        log_lik = -0.5 * (np.log(2 * np.pi * s2) + (X - mu) ** 2 / s2).sum(1)
        log_joint[:, c] = np.log(len(Xc) / len(X_train)) + log_lik
    return _normalize_log(log_joint)


def multinomial_nb(X_train, y_train, X, *, alpha: float = 1.0) -> np.ndarray:
    """Multinomial naive Bayes posteriors ``(M, K)`` for count features, with Laplace smoothing:

        theta_cj = (N_cj + alpha) / (N_c + alpha D),  log p(c|x) = log p(c) + sum_j x_j log theta_cj + const

    as scikit-learn's ``MultinomialNB(alpha=alpha)``.
    """
    X_train, X = _as_matrix("X_train", X_train), _as_matrix("X", X)
    y_train = _as_labels("y_train", y_train, X_train.shape[0])
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    classes = np.unique(y_train)
    counts = np.array([X_train[y_train == c].sum(0) for c in classes]) + alpha    # (K, D)
    log_theta = np.log(counts / counts.sum(1, keepdims=True))
    log_prior = np.log(np.array([np.mean(y_train == c) for c in classes]))
    return _normalize_log(log_prior + X @ log_theta.T)


# ----------------------------------------------------------------------------- distances, collinearity
def mahalanobis(a, b, cov) -> float:
    """d_M(a, b) = sqrt((a - b)^T Sigma^{-1} (a - b)) (Mahalanobis, 1936)."""
    cov = _as_matrix("cov", cov)
    if cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be square, got shape {cov.shape}")
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(np.sqrt(d @ np.linalg.solve(cov, d)))


def whitening_matrix(cov) -> np.ndarray:
    """W = Sigma^{-1/2} (symmetric, from the eigendecomposition): ||W a - W b|| = d_M(a, b)."""
    cov = _as_matrix("cov", cov)
    evals, evecs = np.linalg.eigh(cov)
    if evals.min() <= 0:
        raise ValueError(f"cov must be positive definite, smallest eigenvalue {evals.min():.3g}")
    return evecs @ np.diag(evals**-0.5) @ evecs.T


def vif(X) -> np.ndarray:
    """Variance inflation factors VIF_j = 1 / (1 - R_j^2), R_j^2 from regressing column j on the
    others with an intercept. Var(beta_j) in OLS is sigma^2 / (N var(x_j)) times VIF_j."""
    X = _as_matrix("X", X)
    if X.shape[1] < 2:
        raise ValueError(f"X needs at least 2 columns, got {X.shape[1]}")
    out = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        others = np.column_stack([np.ones(len(X)), np.delete(X, j, axis=1)])
        coef, *_ = np.linalg.lstsq(others, X[:, j], rcond=None)
        resid = X[:, j] - others @ coef
        r2 = 1 - resid @ resid / ((X[:, j] - X[:, j].mean()) ** 2).sum()
        out[j] = 1 / (1 - r2)
    return out
