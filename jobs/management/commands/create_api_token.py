"""Create a personal API token for the Kling-compatible API: for scripts, CI and first setup.

    python manage.py create_api_token alice --team marketing --name "render farm"
    python manage.py create_api_token alice --pair      # an access key + secret key, like Kling's

The token is printed once, as the last line of the output (so `| tail -n1` captures it); only
its hash is stored. With --pair the last two lines are the access key and the secret key (the
secret shown once; stored encrypted so that it can check the JWTs signed with it).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobs.models import Team
from jobs.services.api_tokens import api_key_pair_create, api_token_create
from jobs.services.teams import personal_team_create


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME in one team (default: their personal team) and print "
        "it as the last line. Only members who can make jobs in the team can have one."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--team", metavar="SLUG", help="The team's slug (default: personal).")
        parser.add_argument("--name", default="", help="What the token is for (shown on jobs).")
        parser.add_argument(
            "--pair",
            action="store_true",
            help="Make an access key + secret key (Kling's JWT auth) instead of a Bearer token.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no account called {username!r}.")
        slug = options["team"]
        if slug:
            team = Team.objects.filter(slug=slug, memberships__user=user).first()
            if team is None:
                raise CommandError(
                    f"{username} is not in a team with the slug {slug!r}. Their teams: "
                    + (", ".join(user.teams.values_list("slug", flat=True)) or "none")
                )
        else:
            team = Team.objects.filter(personal=True, memberships__user=user).first()
            if team is None:
                team = personal_team_create(user=user)
        make = api_key_pair_create if options["pair"] else api_token_create
        try:
            token, raw = make(user=user, team=team, name=options["name"] or "Command-line token")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if options["pair"]:
            self.stdout.write(
                f"Created API key pair {token.name!r} for {username} in {team.name} "
                f"({team.slug}). Sign HS256 JWTs (iss = access key) with the secret key; it is "
                "shown once, store it now. Access key, then secret key:"
            )
            self.stdout.write(str(token.access_key))
            self.stdout.write(raw)
            return
        self.stdout.write(
            f"Created API token {token.name!r} ({token.prefix}…) for {username} in "
            f"{team.name} ({team.slug}). It is shown once; store it now:"
        )
        self.stdout.write(raw)
