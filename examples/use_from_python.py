import torch
from torch import nn

import fewshot_mem


class Embedding(nn.Module):  # any network: images (M, 1, 28, 28) float in [0, 1] -> (M, D) embeddings
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1),
                                    nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


if __name__ == "__main__":  # verify imports this file to rebuild Embedding: the work stays in here
    torch.manual_seed(0)
    suite = fewshot_mem.get_suite("omniglot-5way-1shot@2")
    model = fewshot_mem.Prototypes(network=Embedding())  # scored by distance to class prototypes
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for batch in suite.train_episodes(batch_size=16, batches=20):  # EpisodeBatch: support/query images, labels
        loss = model.loss(batch)  # cross-entropy of the queries' scores
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    results = fewshot_mem.evaluate(model, suite)  # the 1,000 frozen test episodes, as the bench scores them
    print(results)
    results.save("runs/embedding.json")  # the results JSON, and the weights beside it (runs/embedding.pt)
