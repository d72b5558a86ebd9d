"""The choices the pictures offer, as plain names: the command line lists them before it imports anything heavy."""

FORMATS = ("png", "svg")  # file formats a figure is saved in
LAYOUTS = ("kamada-kawai", "fruchterman-reingold", "drl")  # whole-graph layouts
BACKENDS = ("igraph", "networkx")  # whole-graph drawing libraries
NEIGHBOURHOOD_LAYOUTS = ("circular", "kamada-kawai")  # one node's neighbourhood
MAX_NODES = 5000  # t-SNE is O(N log N) but slow in practice: larger graphs are drawn from a random sample
MIN_NODES = 10  # fewer points make no map (t-SNE's perplexity must stay below a third of them)
TOP_K = 3  # attention neighbourhoods drawn after training: the three best-connected nodes
MAP_MAX_NODES = 3000  # the report's map (and explorer) show a random sample of bigger graphs: t-SNE time, file size
