"""An application that builds its container in a function, as docs/how-to/app-settings.md does."""

from dependency_injector import providers

from framework import Container


class ShopContainer(Container):
    shop_name = providers.Callable(lambda config: config["shop"]["name"], Container.config)


def create_container() -> ShopContainer:
    container = ShopContainer()
    container.config.shop.name.from_env("SHOP_NAME", default="corner shop")
    return container


def not_a_container() -> str:
    return "a shop"
