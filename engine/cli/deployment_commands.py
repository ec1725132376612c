"""Worker deployment commands: `deployment set-current` and `deployment show`.

Workers run as builds of a deployment when `JOURNEYMAN_WORKER_BUILD_ID` is set; these
commands choose which build new runs start on and show what each build is still serving.
"""

from __future__ import annotations

import typer

from .common import console, err_console, run, settings


def register(app: typer.Typer) -> None:
    deployment = typer.Typer(
        help="Worker versioning: which worker build new journey runs start on.",
        no_args_is_help=True,
    )
    app.add_typer(deployment, name="deployment")

    @deployment.command("set-current")
    def set_current(
        build_id: str = typer.Argument(..., help="The build to make current."),
        wait: float = typer.Option(
            30.0, help="Seconds to wait for a worker of the build to be seen polling."
        ),
    ) -> None:
        """Make a worker build current: new runs start on it, journeys without a versioning
        behavior move to it, PINNED journeys finish on the build they started on."""
        from journeyman.engine.runtime.worker import (
            connect_temporal,
            deployment_name,
            set_current_build,
        )
        from temporalio.service import RPCError

        s = settings()
        name = deployment_name(s)

        async def go() -> str | None:
            client = await connect_temporal(s)
            return await set_current_build(client, name, build_id, wait=wait)

        try:
            previous = run(go())
        except (RuntimeError, RPCError) as e:
            err_console.print(f"[red]error[/red]: {e}")
            raise typer.Exit(1) from e
        was = f" (was {previous})" if previous else ""
        console.print(f"deployment [bold]{name}[/bold]: build [bold]{build_id}[/bold] current{was}")

    @deployment.command("show")
    def show() -> None:
        """List the deployment's builds and their status: `draining` builds still have
        pinned runs open; `drained` builds can be stopped."""
        from journeyman.engine.runtime.worker import (
            build_statuses,
            connect_temporal,
            deployment_name,
            describe_deployment,
        )

        s = settings()
        name = deployment_name(s)

        async def go():  # type: ignore[no-untyped-def]
            return await describe_deployment(await connect_temporal(s), name)

        found = run(go())
        if found is None:
            console.print(f"deployment [bold]{name}[/bold]: no versioned worker has polled yet")
            return
        for build, status in build_statuses(found[0]).items():
            console.print(f"{name} build [bold]{build}[/bold]: {status}")
