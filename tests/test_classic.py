"""dlbook.classic against scikit-learn (and SciPy): the oracle for every classic ML algorithm."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import distance
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine, make_blobs, make_moons
from sklearn.decomposition import PCA
from sklearn.ensemble import AdaBoostClassifier, GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from dlbook import classic as C


def test_sigmoid_is_stable_and_matches_scipy():
    from scipy.special import expit

    z = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(C.sigmoid(z), expit(z), rtol=1e-15, atol=0)


def test_logistic_regression_matches_sklearn():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    w, b = C.logistic_regression(X, y, C=1.0, steps=20_000)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-4)
    assert abs(b - ref.intercept_[0]) < 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_svm_sgd_matches_svc(seed):
    X, y01 = make_blobs(200, centers=[[0, 0], [3, 3]], random_state=seed)
    y = 2 * y01 - 1
    ref = SVC(kernel="linear", C=1.0, tol=1e-8).fit(X, y)
    w, b = C.linear_svm_sgd(X, y, C=1.0)
    got, want = np.append(w, b), np.append(ref.coef_[0], ref.intercept_)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.05


def test_linear_svm_minibatch_runs_and_separates():
    X, y01 = make_blobs(200, centers=[[0, 0], [5, 5]], random_state=0)
    y = 2 * y01 - 1
    w, b = C.linear_svm_sgd(X, y, batch_size=32, epochs=3000, generator=np.random.default_rng(0))
    assert np.mean(np.sign(X @ w + b) == y) > 0.98


@pytest.mark.parametrize("kernel", ["rbf", "poly", "linear"])
def test_svm_dual_decision_function_matches_svc(kernel):
    X, y01 = make_moons(80, noise=0.2, random_state=0)
    y = 2 * y01 - 1
    kern = {"rbf": lambda A, B: C.rbf_kernel(A, B, gamma=1.0),
            "poly": lambda A, B: C.polynomial_kernel(A, B, degree=2, coef0=1.0, gamma=1.0),
            "linear": C.linear_kernel}[kernel]
    alpha, b = C.svm_dual(kern(X, X), y, C=1.0)
    ref = SVC(kernel=kernel, gamma=1.0, degree=2, coef0=1.0, C=1.0, tol=1e-8).fit(X, y)
    X_test = np.random.default_rng(0).normal(size=(40, 2))
    np.testing.assert_allclose(C.svm_decision_function(kern(X_test, X), alpha, y, b), ref.decision_function(X_test), atol=1e-4)
    assert np.all(alpha <= 1.0) and np.all(alpha >= 0)


def test_kernels_match_sklearn():
    from sklearn.metrics.pairwise import polynomial_kernel, rbf_kernel

    A, B = np.random.default_rng(1).normal(size=(2, 7, 3))
    np.testing.assert_allclose(C.rbf_kernel(A, B, gamma=0.3), rbf_kernel(A, B, gamma=0.3))
    np.testing.assert_allclose(C.polynomial_kernel(A, B, degree=3, coef0=1, gamma=0.5), polynomial_kernel(A, B, degree=3, coef0=1, gamma=0.5))


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_best_split_matches_sklearn_root(criterion):
    X, y = load_wine(return_X_y=True)
    j, t, _ = C.best_split(X, y, criterion=criterion)
    tree = DecisionTreeClassifier(criterion=criterion, random_state=0).fit(X, y).tree_
    assert j == tree.feature[0]
    assert abs(t - tree.threshold[0]) < 1e-5 * max(1.0, abs(t))  # sklearn stores float32 thresholds


def test_best_split_regression_matches_sklearn():
    X, y = load_diabetes(return_X_y=True)
    j, t, _ = C.best_split(X, y, criterion="squared_error")
    tree = DecisionTreeRegressor(max_depth=1, random_state=0).fit(X, y).tree_
    assert j == tree.feature[0] and abs(t - tree.threshold[0]) < 1e-6


def test_impurity_values():
    np.testing.assert_allclose(C.impurity([[5, 5], [10, 0]]), [0.5, 0.0])
    np.testing.assert_allclose(C.impurity([[5, 5]], criterion="entropy"), [1.0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=3, max_size=3))
def test_gini_below_entropy_bound(counts):
    if sum(counts) == 0:
        return
    g = C.impurity(counts)
    e = C.impurity(counts, criterion="entropy")
    assert 0 <= g <= 1 - 1 / 3 + 1e-12 and 0 <= e <= np.log2(3) + 1e-12


def test_tree_and_forest_fit_iris():
    X, y = load_iris(return_X_y=True)
    tree = C.fit_tree(X, y)
    assert np.all(C.predict_tree(tree, X).argmax(1) == y)  # an unpruned tree memorises distinct points
    forest = C.random_forest(X, y, n_trees=10, max_features=2, generator=np.random.default_rng(0))
    assert np.mean(C.predict_forest(forest, X).argmax(1) == y) > 0.97


def test_ensemble_variance_limits():
    assert C.ensemble_variance(2.0, 0.0, 10) == pytest.approx(0.2)
    assert C.ensemble_variance(2.0, 1.0, 10) == pytest.approx(2.0)


def test_adaboost_matches_sklearn_samme():
    X, y = load_breast_cancer(return_X_y=True)
    _, alphas, _ = C.adaboost_samme(X, y, n_rounds=20, make_learner=lambda t: DecisionTreeClassifier(max_depth=1, random_state=0))
    ref = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=20, random_state=0).fit(X, y)
    np.testing.assert_allclose(alphas, ref.estimator_weights_[: len(alphas)], rtol=1e-10)


def test_gradient_boosting_matches_sklearn():
    X, y = load_diabetes(return_X_y=True)
    shared = np.random.RandomState(0)
    f0, trees = C.gradient_boosting(X, y, n_estimators=50, make_tree=lambda m: DecisionTreeRegressor(max_depth=3, random_state=shared))
    pred = f0 + 0.1 * np.sum([t.predict(X) for t in trees], axis=0)
    ref = GradientBoostingRegressor(n_estimators=50, learning_rate=0.1, max_depth=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(pred, ref.predict(X), atol=1e-8)


def test_leaf_weight_is_mean_residual_for_squared_loss():
    r = np.random.default_rng(0).normal(size=20)
    # squared loss (y - F)^2 / 2 at F = 0: g = -y, h = 1
    assert C.leaf_weight(-r, np.ones(20), reg_lambda=0.0) == pytest.approx(r.mean())


def test_split_gain_picks_the_split_of_the_newton_loss():
    rng = np.random.default_rng(0)
    x, g, h = rng.normal(size=30), rng.normal(size=30), rng.uniform(0.5, 1, size=30)
    t, gain = C.best_newton_split(x, g, h)

    def newton_loss(mask):  # minimised second-order loss of one leaf
        return -0.5 * g[mask].sum() ** 2 / (h[mask].sum() + 1.0)

    cuts = (np.sort(x)[1:] + np.sort(x)[:-1]) / 2
    brute = min(cuts, key=lambda c: newton_loss(x <= c) + newton_loss(x > c))
    assert t == pytest.approx(brute)


def test_kmeans_inertia_never_increases_and_matches_sklearn_objective():
    from sklearn.cluster import KMeans

    X, _ = make_blobs(300, centers=4, random_state=0)
    init = X[np.random.default_rng(0).choice(len(X), 4, replace=False)]
    mu, labels, hist = C.kmeans(X, 4, init=init, generator=np.random.default_rng(0))
    assert np.all(np.diff(hist) <= 1e-9)
    ref = KMeans(4, init=init, n_init=1, algorithm="lloyd", tol=0.0).fit(X)  # the same start
    np.testing.assert_allclose(mu[np.lexsort(mu.T)], ref.cluster_centers_[np.lexsort(ref.cluster_centers_.T)], atol=1e-8)
    assert hist[-1] == pytest.approx(ref.inertia_, rel=1e-9)


def test_pca_matches_sklearn_up_to_sign():
    X, _ = load_digits(return_X_y=True)
    comp, ev, scores = C.pca(X, 5)
    ref = PCA(5).fit(X)
    signs = np.sign((comp * ref.components_).sum(1))
    np.testing.assert_allclose(comp * signs[:, None], ref.components_, atol=1e-10)
    np.testing.assert_allclose(ev, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(scores * signs, ref.transform(X), atol=1e-8)


def test_knn_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    got = C.knn_predict(X[:1000], y[:1000], X[1000:], k=5)
    np.testing.assert_array_equal(got, KNeighborsClassifier(5).fit(X[:1000], y[:1000]).predict(X[1000:]))


def test_naive_bayes_matches_sklearn():
    X, y = load_breast_cancer(return_X_y=True)
    np.testing.assert_allclose(C.gaussian_nb(X, y, X), GaussianNB().fit(X, y).predict_proba(X), atol=1e-10)
    Xd, yd = load_digits(return_X_y=True)
    np.testing.assert_allclose(C.multinomial_nb(Xd, yd, Xd, alpha=0.5), MultinomialNB(alpha=0.5).fit(Xd, yd).predict_proba(Xd), atol=1e-10)


def test_mahalanobis_matches_scipy_and_whitening():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 3))
    cov = A @ A.T + np.eye(3)
    a, b = rng.normal(size=(2, 3))
    d = C.mahalanobis(a, b, cov)
    assert d == pytest.approx(distance.mahalanobis(a, b, np.linalg.inv(cov)))
    W = C.whitening_matrix(cov)
    assert np.linalg.norm(W @ a - W @ b) == pytest.approx(d)


def test_vif_equals_diagonal_of_inverse_correlation():
    X, _ = load_diabetes(return_X_y=True)
    np.testing.assert_allclose(C.vif(X), np.diag(np.linalg.inv(np.corrcoef(X.T))), rtol=1e-8)


def test_bad_inputs_are_rejected():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="0/1"):
        C.logistic_regression(X, [0, 1, 2, 1])
    with pytest.raises(ValueError, match="C must be"):
        C.logistic_regression(X, [0, 1, 0, 1], C=0.0)
    with pytest.raises(ValueError, match="-1/\\+1"):
        C.linear_svm_sgd(X, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="generator"):
        C.linear_svm_sgd(X, [-1, 1, -1, 1], batch_size=2)
    with pytest.raises(ValueError, match="square"):
        C.svm_dual(np.zeros((3, 2)), [1, -1, 1])
    with pytest.raises(ValueError, match="criterion"):
        C.impurity([1, 2], criterion="gain")
    with pytest.raises(ValueError, match="criterion"):
        C.best_split(X, [0, 1, 0, 1], criterion="mae")
    with pytest.raises(ValueError, match="max_features"):
        C.fit_tree(X, [0, 1, 0, 1], max_features=3)
    with pytest.raises(ValueError, match="shape"):
        C.best_split(np.zeros(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="n_trees"):
        C.random_forest(X, [0, 1, 0, 1], n_trees=0, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="reg_lambda"):
        C.leaf_weight([1.0], [1.0], reg_lambda=-1)
    with pytest.raises(ValueError, match="k must be"):
        C.kmeans(X, 5, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_components"):
        C.pca(X, 3)
    with pytest.raises(ValueError, match="k must be"):
        C.knn_predict(X, [0, 1, 0, 1], X, k=0)
    with pytest.raises(ValueError, match="alpha"):
        C.multinomial_nb(X, [0, 1, 0, 1], X, alpha=-1)
    with pytest.raises(ValueError, match="positive definite"):
        C.whitening_matrix(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="B must be"):
        C.ensemble_variance(1.0, 0.5, 0)
    with pytest.raises(ValueError, match="at least 2 columns"):
        C.vif(np.zeros((4, 1)))
