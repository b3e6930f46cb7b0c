"""The dashboard for the people who read the results (``titans dashboard``): a Streamlit app over ``titans score``.

Why a package of its own: it imports Streamlit (the ``dashboard`` extra), which neither the model server
nor the pipeline steps need; ``serving`` and ``titans`` never import it. The page logic (``views``,
``health``) is plain pandas so it is tested without a browser; ``app`` only lays it out.
"""
