"""A worker's part in the fleet tier (``REDIS_URL``): the tasks that share state through Redis.

Every worker syncs its demand counts with the fleet (``api.fleet_demand``); the worker
in slot 0 of each instance also links the instance's reloads with the fleet's
(``api.fleet_reload``). They all use the worker's one ``RedisLink`` (its pool and
circuit breaker), built with the service (``api.app.build_service``); the cache's Redis
tier and the Redis monitoring store need no task of their own.
"""

from __future__ import annotations

from api.fleet_demand import DemandSync
from api.fleet_reload import FleetReload
from api.service import Service
from engine.pricing.demand import FleetDemand
from engine.scoring.scorer import demand_windows


class Fleet:
    """This worker's part in the fleet tier (``REDIS_URL``): its tasks, and their stop."""

    def __init__(self, service: Service) -> None:
        """Start the demand sync, and in the worker in slot 0 the fleet reload link."""
        assert service.redis is not None
        self.link = service.redis
        runtime = service.runtime
        demand = runtime.scorer.demand
        self.demand: DemandSync | None = None
        if isinstance(demand, FleetDemand):
            self.demand = DemandSync(self.link, demand, demand_windows(runtime.config))
            self.demand.start()
        self.reload: FleetReload | None = None
        if runtime.slot == 0:
            self.reload = FleetReload(self.link, runtime.state)
            self.reload.start()
            runtime.tick_hooks.append(self.reload.tick)

    async def stop(self) -> None:
        """Stop the tasks (the demand sync pushes its last counts); the link stays open."""
        if self.reload is not None:
            await self.reload.stop()
        if self.demand is not None:
            await self.demand.stop()
